"""The engine's public API for a control plane (`etl.preview`, `etl.destination_types`,
`etl.list_files`): what a run would load, typed as the loader types it, and which files a file
source reads; nothing is written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import etl

ORDERS = "id,customer,amount\n1,alice,10.50\n2,bob,20.00\n3,carol,7.25\n"
MORE_ORDERS = "id,customer,amount,note\n4,dave,100.00,rush\n"


def _job(folder: Path, **overrides: object) -> etl.JobConfig:
    return etl.JobConfig.parse(
        {
            "source_type": "local",
            "connection_params": {"base_path": str(folder)},
            "dest_table_name": "orders",
            "file_format": "csv",
            "file_pattern": "*.csv",
            "destination": {"type": "duckdb", "path": str(folder / "never.duckdb")},
            **overrides,
        }  # fmt: skip
    )


def test_preview_reads_what_a_run_would_load(tmp_path: Path) -> None:
    """Two files with different columns are shown as their union (NULL where a file has no
    such column), named by the stored column map, typed as the DuckDB loader types them; the
    limit cuts inside the second file; no destination file is created."""
    (tmp_path / "a.csv").write_text(ORDERS)
    (tmp_path / "b.csv").write_text(MORE_ORDERS + "5,erin,1.00,\n")

    shown = etl.preview(_job(tmp_path), limit=4, column_map={"customer": "client"})

    assert shown.table.num_rows == 4
    assert shown.table.column("client").to_pylist() == ["alice", "bob", "carol", "dave"]
    assert shown.table.column("note").to_pylist() == [None, None, None, "rush"]
    assert sum(shown.table.column("amount").to_pylist()) == 10.50 + 20.00 + 7.25 + 100.00
    assert [(c.source_name, c.name, c.destination_type) for c in shown.columns] == [
        ("id", "id", "BIGINT"),
        ("customer", "client", "VARCHAR"),
        ("amount", "amount", "DOUBLE"),
        ("_etl_source_file", "_etl_source_file", "VARCHAR"),
        ("note", "note", "VARCHAR"),
    ]
    assert not (tmp_path / "never.duckdb").exists()


def test_destination_types_follow_each_loader() -> None:
    """DuckDB: JSON-marked text is JSON, a decimal wider than 38 digits exact text (VARCHAR);
    BigQuery: its own names, a list as a repeated field."""
    schema = pa.schema(
        [
            pa.field("doc", pa.string(), metadata={"etl.logical_type": "json"}),
            pa.field("big", pa.decimal256(40, 2)),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("n", pa.int64()),
        ]
    )
    assert etl.destination_types(schema, "duckdb") == {
        "doc": "JSON", "big": "VARCHAR", "tags": "VARCHAR[]", "n": "BIGINT",
    }  # fmt: skip
    assert etl.destination_types(schema, "bigquery") == {
        "doc": "JSON", "big": "BIGNUMERIC", "tags": "ARRAY<STRING>", "n": "INT64",
    }  # fmt: skip
    with pytest.raises(etl.ConfigError) as unknown:
        etl.destination_types(schema, "sqlite")
    assert unknown.value.field == "destination.type"


def test_list_files_without_a_job(tmp_path: Path) -> None:
    """A prefix and a glob over a store's connection params, as a file source would match
    them: `*` stays in one folder, `**` crosses folders; sizes in bytes."""
    (tmp_path / "exports" / "2024").mkdir(parents=True)
    (tmp_path / "exports" / "a.csv").write_text(ORDERS)
    (tmp_path / "exports" / "2024" / "b.csv").write_text(MORE_ORDERS)
    (tmp_path / "exports" / "readme.txt").write_text("x")
    params = {"base_path": str(tmp_path)}

    flat = etl.list_files("local", params, prefix="exports/", pattern="*.csv")
    deep = etl.list_files("local", params, prefix="exports/", pattern="**/*.csv")

    assert [(f.key, f.size) for f in flat] == [("exports/a.csv", len(ORDERS))]
    assert [f.key for f in deep] == ["exports/2024/b.csv", "exports/a.csv"]
    with pytest.raises(etl.ConfigError) as not_files:
        etl.list_files("postgresql", {"host": "h", "database": "d", "user": "u"})
    assert not_files.value.field == "source_type"
    with pytest.raises(etl.ConfigError) as no_base:
        etl.list_files("local", {})
    assert no_base.value.field == "connection_params.base_path"
