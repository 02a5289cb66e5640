"""The `etl` command as a user meets it (issue 16): installed with pip into a fresh virtualenv
and run from another directory, with a live progress line on a terminal and plain lines off one.

The fresh virtualenv gets the project's dependencies through a `.pth` line pointing at the
test interpreter's site-packages (CI is offline but for the package registries, and installing
~60 packages again would take minutes); the checkout itself is installed with
`pip install --no-deps --no-build-isolation`, so the test proves the packaging (pyproject
metadata, the console script, package discovery), not the resolver.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PG_PARAMS, pg_connect
from tests.etl.support import REPO_ROOT

pytestmark = pytest.mark.integration

_NOT_PACKAGED = shutil.ignore_patterns(
    ".git", ".venv", ".venv-bqemu", "node_modules", "var", "bench", "build", "*.egg-info",
    "test-results", "__pycache__",
)  # fmt: skip


@pytest.fixture(scope="module")
def etl_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the `etl` console script of a fresh virtualenv holding `pip install` of a copy
    of the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "checkout"
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_PACKAGED, symlinks=False)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         str(source)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin" / "etl"


def _job(tmp_path: Path, table: str) -> Path:
    config = {
        "source_type": "postgresql",
        "connection_params": PG_PARAMS,
        "source_table_name": table,
        "load_type": "catalog",
        "dest_table_name": "airlines",
        "destination": {"type": "duckdb", "path": str(tmp_path / "warehouse.duckdb")},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(config))
    return path


def test_installed_etl_runs_from_any_directory(
    etl_command: Path, pg_nycflights13: str, tmp_path: Path
) -> None:
    """`etl version`, `etl validate`, `etl run` and `etl query` work from a directory outside
    the checkout: the 16 airlines land in DuckDB with the source's values, one summary line is
    printed, and the query reads them back."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    job = _job(tmp_path, f"{pg_nycflights13}.airlines")

    def etl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(etl_command), *args], cwd=workdir, env=env, capture_output=True, text=True
        )

    from etl import __version__

    assert etl("version").stdout == f"etl-runner {__version__}\n"
    assert etl("validate", "--config", str(job)).stdout == f"valid: {job}\n"

    ran = etl("run", "--config", str(job), "--state", str(tmp_path / "state.json"))

    assert ran.returncode == 0, ran.stdout + ran.stderr[-3000:]
    assert re.fullmatch(
        r"succeeded: raw_data\.airlines · 16 rows extracted, 16 loaded, 0 skipped, 0 rejected · "
        r"[\d.,]+ MB in memory \(Arrow\) · [\d.]+ s · [\d,]+ rows/s\n",
        ran.stdout,
    ), ran.stdout
    with pg_connect() as connection:
        expected = connection.execute(
            f"SELECT carrier, name FROM {pg_nycflights13}.airlines ORDER BY carrier"
        ).fetchall()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as warehouse:
        loaded = warehouse.execute(
            "SELECT carrier, name FROM raw_data.airlines ORDER BY carrier"
        ).fetchall()
    assert loaded == expected
    assert len(loaded) == 16
    queried = etl(
        "query", "--duckdb", str(tmp_path / "warehouse.duckdb"),
        "SELECT count(*) AS n, min(carrier) AS first FROM raw_data.airlines",
    )  # fmt: skip
    assert queried.stdout == "n   first\n--  -----\n16  9E   \n(1 rows)\n"


def test_invalid_config_names_the_field(etl_command: Path, tmp_path: Path) -> None:
    """`etl validate` and `etl run` on a config without `dest_table_name` exit 1 naming it."""
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"source_type": "local", "connection_params": {}}))

    validated = subprocess.run(
        [str(etl_command), "validate", "--config", str(path)], capture_output=True, text=True
    )
    ran = subprocess.run(
        [str(etl_command), "run", "--config", str(path)], capture_output=True, text=True
    )

    assert validated.returncode == 1
    assert validated.stdout.startswith(f"invalid: {path}: Invalid job config: `dest_table_name`")
    assert ran.returncode == 1
    assert ran.stdout.startswith("failed (terminal): ConfigError: Invalid job config:")


def _read_pty(fd: int, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    chunks = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break  # the child closed the terminal
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_progress_line_on_a_terminal_and_plain_lines_off_one(
    etl_command: Path, pg_nycflights13: str, tmp_path: Path
) -> None:
    """On a terminal (a pty), `etl run` draws a live line with rows, rows/s and elapsed time
    (and, from the table's row estimate, % and ETA) and prints readable log lines and the summary; on pipes it prints JSON log lines on stderr, no
    progress line, and the same summary on stdout."""
    config = json.loads(_job(tmp_path, f"{pg_nycflights13}.flights").read_text())
    config["dest_table_name"] = "flights"
    job = tmp_path / "flights.json"
    job.write_text(json.dumps(config))

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(etl_command), "run", "--config", str(job)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(terminal)
    screen = _read_pty(controller, process, timeout_s=120)
    process.wait(timeout=30)
    os.close(controller)

    assert process.returncode == 0, screen[-3000:]
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # colours and cursor moves
    assert re.search(r"[\d,]+ rows .*MB in memory .*rows/s .*\d:\d\d:\d\d", screen), screen[-3000:]
    # the table's row estimate (pg_class.reltuples) gives a percentage and an ETA
    assert re.search(r"\d+% +[\d,]+ rows .* ETA \d:\d\d:\d\d", screen), screen[-3000:]
    assert "run.start" in screen and '{"' not in screen  # readable log lines, not JSON
    assert "succeeded: raw_data.flights · 336,776 rows extracted, 336,776 loaded" in screen

    config["destination"]["path"] = str(tmp_path / "second.duckdb")  # a first run again
    job.write_text(json.dumps(config))
    piped = subprocess.run(
        [str(etl_command), "run", "--config", str(job)], capture_output=True, text=True
    )

    assert piped.returncode == 0, piped.stderr[-3000:]
    assert piped.stdout.startswith(
        "succeeded: raw_data.flights · 336,776 rows extracted, 336,776 loaded"
    )
    assert piped.stdout.count("\n") == 1
    assert "rows/s" not in piped.stderr and "\x1b[" not in piped.stderr
    events = [json.loads(line)["message"] for line in piped.stderr.splitlines()]
    assert events[0] == "run.start" and events[-1] == "run.succeeded"
