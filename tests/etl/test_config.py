"""`JobConfig`: the config contract of DESIGN.md §4 and its validation errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from etl import CONNECTION_KEYS, TABLE_SOURCES, ConfigError, JobConfig, UnknownConnectionKeyError

PG = {
    "host": "127.0.0.1",
    "port": 5432,
    "database": "test",
    "user": "postgres",
    "password": "s3cret-value",
}


def _table_job(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "source_type": "postgresql",
        "connection_params": dict(PG),
        "source_table_name": "public.flights",
        "load_type": "transactional",
        "timestamp_column": "time_hour",
        "dest_table_name": "flights",
    }
    config.update(changes)
    return {key: value for key, value in config.items() if value is not ...}


def _file_job(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "source_type": "local",
        "connection_params": {"base_path": "/data"},
        "file_format": "csv",
        "dest_table_name": "flights",
    }
    config.update(changes)
    return {key: value for key, value in config.items() if value is not ...}


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        (
            _table_job(source_type="oracle"),
            "source_type",
            r"`source_type`: Input should be 'postgresql'",
        ),
        (_table_job(source_type=...), "source_type", r"`source_type`: Field required"),
        (
            _table_job(load_type="full"),
            "load_type",
            r"`load_type`: Input should be 'transactional', 'catalog' or 'merge'",
        ),
        (
            _table_job(dest_table_name="1 flights"),
            "dest_table_name",
            r"`dest_table_name`: must be letters, digits and underscores",
        ),
        (_table_job(dest_table_name=...), "dest_table_name", r"`dest_table_name`: Field required"),
        (
            _table_job(null_cursor="skip"),
            "null_cursor",
            r"`null_cursor`: Input should be 'fail', 'include' or 'exclude'",
        ),
        (
            _table_job(cursor_lag_seconds=-1),
            "cursor_lag_seconds",
            r"`cursor_lag_seconds`: Input should be greater than or equal to 0",
        ),
        (
            _table_job(chunk_size=0),
            "chunk_size",
            r"`chunk_size`: Input should be greater than or equal to 1",
        ),
        (
            _table_job(source_tabel_name="x"),
            "source_tabel_name",
            r"`source_tabel_name`: Extra inputs are not permitted",
        ),
        (
            _table_job(destination={"type": "duckdb", "dataset": "raw-data"}),
            "destination.dataset",
            r"`destination.dataset`: must be letters",
        ),
        (
            _table_job(destination={"type": "snowflake"}),
            "destination.type",
            r"`destination.type`: Input should be 'duckdb' or 'bigquery'",
        ),
        (
            _table_job(destination={"type": "bigquery"}),
            "destination.project",
            r"`destination.project`: `project` is required for a bigquery destination",
        ),
        (
            _table_job(connection_params={"port": 5432, "database": "test"}),
            "connection_params.host",
            r"connection_params for postgresql need host, user",
        ),
        (
            _table_job(custom_sql="SELECT 1"),
            "source_table_name",
            r"give exactly one of source_table_name and custom_sql",
        ),
        (
            _table_job(source_table_name=...),
            "source_table_name",
            r"give exactly one of source_table_name and custom_sql",
        ),
        (
            _table_job(timestamp_column=...),
            "timestamp_column",
            r"timestamp_column is required for a transactional table load",
        ),
        (
            _file_job(file_format=...),
            "file_format",
            r"file_format is required for file sources \(csv, parquet, json, jsonl\)",
        ),
        (
            _file_job(file_format="xlsx"),
            "file_format",
            r"`file_format`: Input should be 'csv', 'parquet', 'json' or 'jsonl'",
        ),
        (
            _file_job(connection_params={}),
            "connection_params.base_path",
            r"connection_params for local need base_path",
        ),
        (
            _file_job(file_format_options={"delimiter": ";;"}),
            "file_format_options.delimiter",
            r"`file_format_options.delimiter`: must be exactly one character",
        ),
        (
            _file_job(file_format_options={"encoding": "klingon"}),
            "file_format_options.encoding",
            r"`file_format_options.encoding`: unknown encoding 'klingon'",
        ),
        (
            _file_job(file_format_options={"delimeter": ";"}),
            "file_format_options.delimeter",
            r"`file_format_options.delimeter`: Extra inputs are not permitted",
        ),
        (
            _file_job(file_format_options={"skip_rows": -2}),
            "file_format_options.skip_rows",
            r"`file_format_options.skip_rows`: Input should be greater than or equal to 0",
        ),
        (
            _table_job(parallelism=0),
            "parallelism",
            r"`parallelism`: Input should be greater than or equal to 1",
        ),
        (
            _table_job(parallelism=65),
            "parallelism",
            r"`parallelism`: Input should be less than or equal to 64",
        ),
    ],
    ids=[
        "unknown-source-type",
        "missing-source-type",
        "unknown-load-type",
        "bad-dest-table-name",
        "missing-dest-table-name",
        "unknown-null-cursor-policy",
        "negative-lag",
        "zero-chunk-size",
        "misspelt-field",
        "bad-dataset",
        "unknown-destination",
        "bigquery-without-project",
        "missing-connection-keys",
        "table-and-custom-sql",
        "neither-table-nor-sql",
        "transactional-without-cursor",
        "file-without-format",
        "unknown-file-format",
        "local-without-base-path",
        "long-delimiter",
        "unknown-encoding",
        "misspelt-option",
        "negative-skip-rows",
        "zero-parallelism",
        "parallelism-over-64",
    ],
)
def test_invalid_config_names_the_field(
    config: dict[str, Any], field: str | None, message: str
) -> None:
    """An invalid config raises ConfigError whose message names the field and what is allowed,
    and whose `field` is the dotted path (None-level rules name the fields in the message)."""
    with pytest.raises(ConfigError, match=r"^Invalid job config: .*" + message) as caught:
        JobConfig.parse(config)

    if field is not None:
        assert caught.value.field == field
    assert "s3cret-value" not in str(caught.value)


def test_design_example_parses_with_defaults() -> None:
    """The example of DESIGN.md §4 is valid; omitted fields take their documented defaults."""
    job = JobConfig.parse(
        _table_job(
            selected_columns=[],
            destination={"type": "duckdb", "path": "warehouse.duckdb", "dataset": "raw_data"},
        )
    )

    assert job.write_disposition == "append"
    assert (job.null_cursor, job.cursor_lag_seconds, job.on_bad_rows) == ("fail", 0, "fail")
    assert job.primary_key == [] and job.chunk_size == 100_000
    assert not job.is_file_source


def test_file_source_needs_no_cursor_nor_columns() -> None:
    """A file source is valid without a cursor column and with empty `selected_columns`."""
    job = JobConfig.parse(_file_job(load_type="transactional", selected_columns=[]))

    assert job.is_file_source
    assert job.file_format_options.delimiter == ","
    assert job.file_format_options.null_values == ["", "NULL", "null", "\\N"]


def test_catalog_table_load_needs_no_cursor() -> None:
    """A catalog table load is valid without `timestamp_column` and replaces the table."""
    job = JobConfig.parse(_table_job(load_type="catalog", timestamp_column=...))

    assert job.write_disposition == "replace"


def test_secrets_are_redacted() -> None:
    """`redacted()` and `repr()` never show passwords or destination credentials."""
    job = JobConfig.parse(
        _table_job(
            destination={
                "type": "bigquery",
                "project": "p",
                "credentials": {"private_key": "KEY-123"},
            }
        )
    )

    redacted = job.redacted()

    assert redacted["connection_params"]["password"] == "***"
    assert redacted["connection_params"]["host"] == "127.0.0.1"
    assert redacted["destination"]["credentials"] == "***"
    assert "s3cret-value" not in repr(job) and "KEY-123" not in repr(job)


@pytest.mark.parametrize(
    ("config", "owner"),
    [
        (_table_job(), "postgresql://127.0.0.1:5432/test/public.flights"),
        (
            _table_job(source_table_name=..., custom_sql="SELECT 1 AS time_hour"),
            "postgresql://127.0.0.1:5432/test/sql:"
            + hashlib.sha256(b"SELECT 1 AS time_hour").hexdigest()[:16],
        ),
        (
            _table_job(
                source_type="bigquery",
                connection_params={"project": "p1", "credentials": "s3cret-value"},
                source_table_name="ds.t",
            ),
            "bigquery://p1/ds.t",
        ),
        (
            {
                "source_type": "s3",
                "connection_params": {"bucket": "b", "aws_secret_access_key": "s3cret-value"},
                "file_format": "csv",
                "file_prefix": "in/",
                "file_pattern": "*.csv",
                "dest_table_name": "t",
            },
            "s3://b/in/*.csv",
        ),
        (_table_job(pipeline_id="datasource:7"), "datasource:7"),
    ],
    ids=["table", "custom-sql", "bigquery", "s3-files", "explicit"],
)
def test_owner_id_names_the_source_never_a_secret(config: dict[str, Any], owner: str) -> None:
    """`owner_id` is `pipeline_id` when set, else derived from the source's identity (type,
    host, database, table / SQL digest, bucket, prefix, pattern) without any secret."""
    job = JobConfig.parse(config)
    assert job.owner_id == owner
    assert "s3cret" not in job.owner_id


def test_empty_pipeline_id_is_refused() -> None:
    """An empty `pipeline_id` is a ConfigError naming the field (None derives one)."""
    with pytest.raises(ConfigError, match="`pipeline_id`: String should have at least 1"):
        JobConfig.parse(_table_job(pipeline_id=""))


@pytest.mark.parametrize(
    ("config", "key", "message"),
    [
        (
            _table_job(connection_params={**PG, "sslmod": "require"}),
            "sslmod",
            r"`connection_params\.sslmod`: connection_params for postgresql has an unknown key "
            r"`sslmod` \(did you mean `sslmode`\?\); allowed: application_name, "
            r"connect_timeout, database, host, password, port, sslmode, user",
        ),
        (
            _table_job(source_type="mysql", connection_params={**PG, "sslmode": "require"}),
            "sslmode",
            r"connection_params for mysql has an unknown key `sslmode`; allowed: "
            r"connect_timeout, database, host, password, port, user",
        ),
        (
            _file_job(connection_params={"base_path": "/data", "bucket": "b"}),
            "bucket",
            r"connection_params for local has an unknown key `bucket`; allowed: base_path",
        ),
        (
            _file_job(source_type="s3", connection_params={"bucket": "b", "regoin": "eu"}),
            "regoin",
            r"unknown key `regoin` \(did you mean `region`\?\)",
        ),
    ],
    ids=["postgres-typo", "mysql-has-no-sslmode", "local-bucket", "s3-typo"],
)
def test_unknown_connection_key_is_refused_naming_it(
    config: dict[str, Any], key: str, message: str
) -> None:
    """A `connection_params` key the source type does not read fails validation with
    `UnknownConnectionKeyError` naming the key, the closest allowed key and every allowed one:
    before, a misspelt `sslmod` was ignored and the connection made without TLS required
    (the same silent drop: https://github.com/bytebase/dbhub/issues/334)."""
    with pytest.raises(UnknownConnectionKeyError, match=message) as refused:
        JobConfig.parse(config)

    assert refused.value.field == f"connection_params.{key}"
    assert refused.value.key == key
    assert isinstance(refused.value, ConfigError)


@pytest.mark.parametrize("source_type", sorted(CONNECTION_KEYS))
def test_every_connection_key_read_is_allowed(source_type: str) -> None:
    """Each source type takes every key of `CONNECTION_KEYS[source_type]` (the keys its
    extractor reads), so a valid config never trips the unknown-key check."""
    params = {key: "1" for key in CONNECTION_KEYS[source_type]}
    config = (
        _table_job(source_type=source_type, connection_params=params, source_table_name="d.t")
        if source_type in TABLE_SOURCES
        else _file_job(source_type=source_type, connection_params=params)
    )

    assert set(JobConfig.parse(config).connection_params) == CONNECTION_KEYS[source_type]
