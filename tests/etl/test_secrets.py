"""Credentials never leak from a failed run of the engine (issue 5, item 5).

Each case runs a job that fails on purpose because of a wrong secret: a PostgreSQL role that does
not exist (the test server trusts every login, so a password cannot be wrong there), a wrong
MariaDB root password, a wrong S3 secret key (a private moto server that checks signatures), a
wrong Azure account key (Azurite checks the shared-key signature), malformed service-account keys
for the GCS source and for the BigQuery destination (the GCS and BigQuery emulators accept any
credentials, so only a malformed key fails there). The secret is distinctive
(`S3cr3t-<uuid>` plus URL-special characters) and neither it nor its URL-encoded forms may
appear in the exception (str, repr, args, chained causes and contexts, the formatted
traceback), in any log record (structlog routed through `logging` at DEBUG, rendered with the
project's own processors), or in the stdout/stderr of `python -m etl run --config`; the error
must still name what went wrong.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog

from etl import ConfigError, JobConfig, run
from etl.exceptions import SourceAuthError
from tests.conftest import BIGQUERY_PROJECT, MYSQL_PARAMS, PG_PARAMS, emulator_env
from tests.etl.extract.conftest import Bucket, file_job_config, make_bucket  # noqa: F401
from tests.etl.extract.test_cloud_files import s3_with_auth  # noqa: F401
from tests.etl.support import DATASET, REPO_ROOT, cli_command

pytestmark = pytest.mark.integration


def new_secret() -> str:
    """A secret no message could contain by chance; `@/:#%+ ` make its URL-encoded forms differ."""
    return f"S3cr3t-{uuid.uuid4()}@/:#%+ x"


def secret_forms(secret: str) -> list[str]:
    """The secret as given and as URL encodings would show it."""
    return sorted({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})


def assert_no_secret(secret: str, where: str, text: str) -> None:
    for form in secret_forms(secret):
        assert form not in text, f"the secret ({form!r}) leaked into {where}:\n{text[:4000]}"


def exception_text(exc: BaseException) -> str:
    """str, repr and args of `exc` and of every cause/context below it, plus the traceback."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        parts += (
            [repr(value) for value in vars(current).values()]
            if hasattr(current, "__dict__")
            else []
        )
        pending += [current.__cause__, current.__context__]  # type: ignore[list-item]
    parts.append("".join(traceback.format_exception(exc)))
    return "\n".join(parts)


@pytest.fixture
def structlog_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Route structlog through `logging` at DEBUG (the project's processors and renderer kept),
    capture every record with caplog; the previous structlog configuration is restored after."""
    previous = structlog.get_config()
    structlog.configure(
        processors=previous["processors"],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        structlog.configure(**previous)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: message, arguments and formatted exception."""
    formatter = logging.Formatter()
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def run_cli_raw(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m etl run --config FILE` in a subprocess (emulator settings inherited)."""
    config_path = tmp_path / "job.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        cli_command(config_path, tmp_path / "state.json"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def local_csv(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "rows.csv").write_text("id\n1\n2\n")
    return {"base_path": str(folder)}


def service_account(secret: str) -> dict[str, str]:
    """A service-account document whose private key is malformed and contains `secret`."""
    return {
        "type": "service_account",
        "project_id": BIGQUERY_PROJECT,
        "private_key_id": "1",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n",
        "client_email": f"etl@{BIGQUERY_PROJECT}.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


Case = tuple[dict[str, Any], type[Exception], str, str | None, list[str]]
"""(job config, error class, regex the message matches, ConfigError field or None, further
secret values the job holds besides the generated one)."""


def case_postgresql(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    config = {
        "source_type": "postgresql",
        "source_table_name": "public.t",
        "load_type": "catalog",
        "connection_params": {**PG_PARAMS, "user": role, "password": secret},
    }
    return (
        config,
        SourceAuthError,
        f'rejected the credentials.*role "{role}" does not exist',
        None,
        [],
    )


def case_mysql(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    config = {
        "source_type": "mysql",
        "source_table_name": "test.t",
        "load_type": "catalog",
        "connection_params": {**MYSQL_PARAMS, "password": secret},
    }
    return (
        config,
        SourceAuthError,
        "rejected the credentials.*Access denied for user 'root'",
        None,
        [],
    )


def case_s3(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    server = request.getfixturevalue("s3_with_auth")
    config = {
        "source_type": "s3",
        "file_format": "csv",
        "connection_params": {
            "bucket": "signed",
            "region": "us-east-1",
            **server,
            "aws_secret_access_key": secret,
        },
    }
    return config, SourceAuthError, "Source s3 .* rejected the credentials.*signature", None, []


def case_azure(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    container: Bucket = request.getfixturevalue("make_bucket")("azure_blob")
    container.put("rows.csv", b"id\n1\n")
    params = container.connection_params()
    key = base64.b64encode(secret.encode().ljust(64, b"!")).decode()  # what a user pastes
    parts = [
        f"AccountKey={key}" if part.startswith("AccountKey=") else part
        for part in params["connection_string"].split(";")
    ]
    config = {
        "source_type": "azure_blob",
        "file_format": "csv",
        "connection_params": {**params, "connection_string": ";".join(parts)},
    }
    return config, SourceAuthError, "Source azure_blob .* rejected the credentials", None, [key]


def case_gcs(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    bucket: Bucket = request.getfixturevalue("make_bucket")("gcs")
    bucket.put("rows.csv", b"id\n1\n")
    config = {
        "source_type": "gcs",
        "file_format": "csv",
        "connection_params": {**bucket.connection_params(), "credentials": service_account(secret)},
    }
    return (
        config,
        ConfigError,
        "not a valid service-account JSON key",
        "connection_params.credentials",
        [],
    )


def case_bigquery_destination(secret: str, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    config = {
        "source_type": "local",
        "file_format": "csv",
        "connection_params": local_csv(tmp_path),
        "destination": {
            "type": "bigquery",
            "project": BIGQUERY_PROJECT,
            "dataset": DATASET,
            "api_endpoint": emulator_env("ETL_BIGQUERY_API_ENDPOINT"),
            "credentials": service_account(secret),
        },
    }
    return (
        config,
        ConfigError,
        "not a valid service-account JSON document",
        "destination.credentials",
        [],
    )


CASES: dict[str, Callable[[str, Path, pytest.FixtureRequest], Case]] = {
    "postgresql-unknown-role": case_postgresql,
    "mysql-wrong-password": case_mysql,
    "s3-wrong-secret": case_s3,
    "azure-wrong-key": case_azure,
    "gcs-malformed-key": case_gcs,
    "bigquery-destination-malformed-key": case_bigquery_destination,
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_failed_run_never_shows_the_secret(
    name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    structlog_records: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The run fails with the expected typed error and message; the secret is in none of the
    exception chain, the log records, the process's own output, and the CLI's stdout/stderr
    (exit code 1, JSON naming the same error class)."""
    secret = new_secret()
    config, error_class, message, field, others = CASES[name](secret, tmp_path, request)
    config.setdefault("dest_table_name", "t")
    config.setdefault(
        "destination", {"type": "duckdb", "path": str(tmp_path / "w.duckdb"), "dataset": DATASET}
    )

    with pytest.raises(error_class, match=message) as info:
        run(JobConfig.parse(config))

    if field is not None:
        assert info.value.field == field  # type: ignore[attr-defined]
    captured = capfd.readouterr()
    completed = run_cli_raw(config, tmp_path)
    for value in [secret, *others]:
        assert_no_secret(value, "the exception", exception_text(info.value))
        assert_no_secret(value, "the log records", log_text(structlog_records))
        assert_no_secret(value, "the process output", captured.out + captured.err)
        assert_no_secret(value, "the CLI stdout", completed.stdout)
        assert_no_secret(value, "the CLI stderr", completed.stderr)
    output = json.loads(completed.stdout)
    assert (completed.returncode, output["status"], output["error_class"]) == (
        1,
        "failed",
        error_class.__name__,
    )
    assert output["transient"] is False
