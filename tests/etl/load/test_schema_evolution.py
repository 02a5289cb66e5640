"""Schema evolution between runs (issue 17, item 8; shared/DESIGN.md §5 "Schema"): lossless
widenings are applied in place in DuckDB and BigQuery, any type -> STRING only with
`allow_widen_to_string`, and narrowing fails naming the column and both types, writing nothing.

BigQuery emulator (bqemulator 1.4.0) vs real BigQuery: it runs `ALTER COLUMN ... SET DATA TYPE`
on the stored data but leaves the table's schema metadata unchanged (tables.get still reports
INT64 after INT64 -> NUMERIC), and it accepts a change to STRING that real BigQuery refuses
(which is why the loader rewrites the table for STRING instead). So the BigQuery tests check the
values read back (NUMERIC values come back as Decimal) and the types where the emulator reports
them (after a rewrite); they cannot check a BIGNUMERIC column (the emulator cannot create one).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import SchemaChangeError, SyncState
from etl.config import DestinationConfig
from etl.load.base import Loader, LoadRequest
from etl.load.bigquery.types import bigquery_widened
from etl.load.duckdb import DuckDbLoader, widened
from etl.registry import get_loader
from tests.etl.support import DATASET, bigquery_destination, bq_rows, duck_query


@pytest.mark.parametrize(
    ("existing", "incoming", "to_string", "expected"),
    [
        ("INTEGER", "BIGINT", False, "BIGINT"),
        ("BIGINT", "INTEGER", False, "BIGINT"),
        ("INTEGER", "UINTEGER", False, "BIGINT"),
        ("UBIGINT", "BIGINT", False, "HUGEINT"),
        ("INTEGER", "DECIMAL(20,3)", False, "DECIMAL(20,3)"),
        ("BIGINT", "DECIMAL(20,3)", False, "DECIMAL(22,3)"),
        ("DECIMAL(20,3)", "INTEGER", False, "DECIMAL(20,3)"),
        ("DECIMAL(10,2)", "DECIMAL(12,4)", False, "DECIMAL(12,4)"),
        ("DECIMAL(12,4)", "DECIMAL(10,2)", False, "DECIMAL(12,4)"),
        ("DECIMAL(10,2)", "DECIMAL(10,4)", False, "DECIMAL(12,4)"),
        ("DECIMAL(38,9)", "DECIMAL(38,14)", False, None),
        ("HUGEINT", "DECIMAL(10,2)", False, None),
        ("FLOAT", "DOUBLE", False, "DOUBLE"),
        ("DOUBLE", "FLOAT", False, "DOUBLE"),
        ("INTEGER", "DOUBLE", False, "DOUBLE"),
        ("SMALLINT", "FLOAT", False, "FLOAT"),
        ("FLOAT", "INTEGER", False, "DOUBLE"),
        ("BIGINT", "DOUBLE", False, None),
        ("DOUBLE", "BIGINT", False, None),
        ("DECIMAL(20,3)", "DOUBLE", False, None),
        ("BIGINT", "VARCHAR", False, None),
        ("BIGINT", "VARCHAR", True, "VARCHAR"),
        ("VARCHAR", "DATE", True, "VARCHAR"),
        ("BIGINT[]", "VARCHAR", True, None),
    ],
)
def test_duckdb_widened(
    existing: str, incoming: str, to_string: bool, expected: str | None
) -> None:
    """The destination type of a column holding both `existing` and `incoming` values, or None
    when no lossless one exists (and STRING is not allowed)."""
    assert widened(existing, incoming, to_string=to_string) == expected


@pytest.mark.parametrize(
    ("existing", "incoming", "to_string", "expected"),
    [
        ("INT64", "NUMERIC", False, "NUMERIC"),
        ("INTEGER", "NUMERIC", False, "NUMERIC"),
        ("INTEGER", "INT64", False, "INT64"),
        ("INT64", "BIGNUMERIC", False, "BIGNUMERIC"),
        ("NUMERIC", "BIGNUMERIC", False, "BIGNUMERIC"),
        ("BIGNUMERIC", "INT64", False, "BIGNUMERIC"),
        ("NUMERIC", "INT64", False, "NUMERIC"),
        ("INT64", "FLOAT64", False, None),
        ("NUMERIC", "FLOAT", False, None),
        ("INT64", "STRING", False, None),
        ("INT64", "STRING", True, "STRING"),
        ("STRING", "BOOLEAN", True, "STRING"),
        ("JSON", "STRING", True, None),
    ],
)
def test_bigquery_widened(
    existing: str, incoming: str, to_string: bool, expected: str | None
) -> None:
    """BigQuery's in-place widenings: INT64 -> NUMERIC -> BIGNUMERIC (legacy names such as
    INTEGER, which real BigQuery reports, are the same types)."""
    assert bigquery_widened(existing, incoming, to_string=to_string) == expected


def _batch(**columns: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def _load(loader: Loader, batch: pa.RecordBatch, run_id: str, *, to_string: bool = False) -> None:
    loader.load(
        LoadRequest(
            table="t",
            batches=iter([batch]),
            write_disposition="append",
            run_id=run_id,
            finalize=SyncState,
            allow_widen_to_string=to_string,
        )
    )


FIRST = _batch(
    i=pa.array([1, -2], pa.int32()),
    b=pa.array([2**40, None], pa.int64()),
    f=pa.array([1.5, None], pa.float32()),
    d=pa.array([Decimal("1.25"), None], pa.decimal128(10, 2)),
)
SECOND = _batch(
    i=pa.array([Decimal("12345678901234567.123")], pa.decimal128(20, 3)),
    b=pa.array([Decimal("-1.5")], pa.decimal128(20, 3)),
    f=pa.array([0.1], pa.float64()),
    d=pa.array([Decimal("12345678.1234")], pa.decimal128(12, 4)),
)


def test_duckdb_widens_in_place(tmp_path: Path) -> None:
    """int32 -> DECIMAL(20,3), int64 -> DECIMAL(22,3), FLOAT -> DOUBLE, DECIMAL(10,2) ->
    DECIMAL(12,4): each column altered in place, earlier values unchanged, new values exact."""
    path = tmp_path / "w.duckdb"
    loader = DuckDbLoader(DestinationConfig(type="duckdb", path=str(path), dataset=DATASET))
    _load(loader, FIRST, "r1")
    _load(loader, SECOND, "r2")

    assert duck_query(
        path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 't' AND column_name IN ('i', 'b', 'f', 'd') ORDER BY 1",
        [DATASET],
    ) == [("b", "DECIMAL(22,3)"), ("d", "DECIMAL(12,4)"), ("f", "DOUBLE"), ("i", "DECIMAL(20,3)")]
    assert duck_query(path, f"SELECT i, b, f, d FROM {DATASET}.t ORDER BY _etl_run_id, i") == [
        (Decimal("-2"), None, None, None),
        (Decimal("1"), Decimal(2**40), 1.5, Decimal("1.25")),
        (
            Decimal("12345678901234567.123"),
            Decimal("-1.5"),
            0.1,
            Decimal("12345678.1234"),
        ),
    ]


@pytest.mark.parametrize(
    ("incoming", "existing_type", "incoming_type"),
    [
        (pa.array([0.5], pa.float64()), "DECIMAL(10,2)", "DOUBLE"),
        (pa.array([1.5], pa.float32()), "DECIMAL(10,2)", "FLOAT"),
        (pa.array(["x"], pa.string()), "DECIMAL(10,2)", "VARCHAR"),
    ],
    ids=["decimal-to-double", "decimal-to-float", "decimal-to-text"],
)
def test_duckdb_narrowing_fails_naming_both_types(
    tmp_path: Path, incoming: pa.Array, existing_type: str, incoming_type: str
) -> None:
    """A change no lossless widening covers fails naming the column and both types; the table
    keeps its type and rows."""
    path = tmp_path / "w.duckdb"
    loader = DuckDbLoader(DestinationConfig(type="duckdb", path=str(path), dataset=DATASET))
    _load(loader, _batch(d=FIRST.column("d")), "r1")

    with pytest.raises(
        SchemaChangeError,
        match=rf"Column `d` of t is {re.escape(existing_type)} in the destination but "
        rf"{incoming_type} in the source",
    ):
        _load(loader, _batch(d=incoming), "r2")

    assert duck_query(path, f"SELECT d FROM {DATASET}.t ORDER BY d") == [
        (Decimal("1.25"),),
        (None,),
    ]


def test_duckdb_widens_to_varchar_only_when_allowed(tmp_path: Path) -> None:
    """BIGINT then text: with `allow_widen_to_string` the column becomes VARCHAR (earlier values
    as their text), and later integers load as text too; without it the run fails."""
    path = tmp_path / "w.duckdb"
    loader = DuckDbLoader(DestinationConfig(type="duckdb", path=str(path), dataset=DATASET))
    _load(loader, _batch(n=pa.array([1, 20])), "r1")
    with pytest.raises(SchemaChangeError, match="is BIGINT in the destination but VARCHAR"):
        _load(loader, _batch(n=pa.array(["three"])), "r2")

    _load(loader, _batch(n=pa.array(["three"])), "r2", to_string=True)
    _load(loader, _batch(n=pa.array([4], pa.int64())), "r3", to_string=True)

    assert duck_query(path, f"SELECT n FROM {DATASET}.t ORDER BY _etl_run_id, n") == [
        ("1",),
        ("20",),
        ("three",),
        ("4",),
    ]
    assert duck_query(
        path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 't' AND column_name = 'n'",
        [DATASET],
    ) == [("VARCHAR",)]


def _bigquery(dataset: str) -> Loader:
    return get_loader("bigquery")(DestinationConfig(**bigquery_destination(dataset)))


def test_bigquery_widens_int64_to_numeric_in_place(bq_dataset: str, bigquery_client: Any) -> None:
    """INT64 then NUMERIC values: the column is altered (ALTER COLUMN SET DATA TYPE NUMERIC),
    earlier integers are read back as exact NUMERIC values next to the new decimals; a later
    run with integers again inserts them into the NUMERIC column (implicit coercion). The
    emulator's ALTER makes the column DuckDB's default DECIMAL(18,3), not NUMERIC's (38, 9), so
    the new value stays within 15 integer digits and 3 decimals here."""
    loader = _bigquery(bq_dataset)
    _load(loader, _batch(n=pa.array([1, -2], pa.int64())), "r1")
    _load(loader, _batch(n=pa.array([Decimal("12345.678")], pa.decimal128(20, 3))), "r2")
    _load(loader, _batch(n=pa.array([7], pa.int64())), "r3")

    assert bq_rows(
        bigquery_client, f"SELECT _etl_run_id, n FROM `{bq_dataset}.t` ORDER BY _etl_run_id, n"
    ) == [
        ("r1", Decimal("-2")),
        ("r1", Decimal("1")),
        ("r2", Decimal("12345.678")),
        ("r3", Decimal("7")),
    ]


def test_bigquery_narrowing_fails_and_string_needs_the_opt_in(
    bq_dataset: str, bigquery_client: Any
) -> None:
    """NUMERIC then FLOAT64 fails naming the column and both types; INT64 then STRING fails
    without `allow_widen_to_string` and with it rewrites the column as STRING (the emulator
    then reports STRING), earlier values as their text; later integers arrive as text."""
    loader = _bigquery(bq_dataset)
    _load(loader, _batch(d=FIRST.column("d"), n=pa.array([1, 20])), "r1")

    with pytest.raises(
        SchemaChangeError, match=r"Column `d` of t is NUMERIC in the destination but FLOAT64"
    ):
        _load(loader, _batch(d=pa.array([0.5])), "r2")
    with pytest.raises(
        SchemaChangeError, match=r"Column `n` of t is INT64 in the destination but STRING"
    ):
        _load(loader, _batch(n=pa.array(["three"])), "r2")

    _load(loader, _batch(n=pa.array(["three"])), "r2", to_string=True)
    _load(loader, _batch(n=pa.array([4])), "r3", to_string=True)

    table = bigquery_client.get_table(f"{bq_dataset}.t")
    assert {f.name: f.field_type for f in table.schema}["n"] == "STRING"
    assert bq_rows(
        bigquery_client, f"SELECT _etl_run_id, n, d FROM `{bq_dataset}.t` ORDER BY _etl_run_id, n"
    ) == [
        ("r1", "1", Decimal("1.25")),
        ("r1", "20", None),
        ("r2", "three", None),
        ("r3", "4", None),
    ]
