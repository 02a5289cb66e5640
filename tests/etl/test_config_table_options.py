"""The config contract of BigQuery table options (`destination.partitioning`, `clustering`,
`description`, `labels`: etl/config/), and the DuckDB destination's one warning about the
options it ignores. Label rules: https://cloud.google.com/bigquery/docs/labels-intro#requirements;
clustering: https://cloud.google.com/bigquery/docs/clustered-tables#limitations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl import ConfigError, JobConfig, run

BASE = {
    "source_type": "local",
    "connection_params": {"base_path": "/data"},
    "file_format": "csv",
    "dest_table_name": "t",
}


def _parse(selected: list[str] | None = None, **destination: Any) -> JobConfig:
    config = {**BASE, "destination": {"type": "bigquery", "project": "p", **destination}}
    if selected is not None:
        config["selected_columns"] = selected
    return JobConfig.parse(config)


@pytest.mark.parametrize(
    ("destination", "selected", "field", "message"),
    [
        (
            {"clustering": ["a", "b", "c", "d", "e"]},
            None,
            "destination.clustering",
            "List should have at most 4 items after validation, not 5",
        ),
        ({"clustering": ["a", "a"]}, None, "destination.clustering", "a column is named twice"),
        (
            {"clustering": ["a", "zz"]},
            ["a", "b"],
            "destination.clustering",
            "clustering column 'zz' is not among selected_columns",
        ),
        (
            {"partitioning": {"type": "DAY", "field": "when"}},
            ["a"],
            "destination.partitioning.field",
            "partition column 'when' is not among selected_columns",
        ),
        (
            {"partitioning": {"type": "WEEK"}},
            None,
            "destination.partitioning.type",
            "Input should be 'DAY', 'HOUR', 'MONTH' or 'YEAR'",
        ),
        (
            {"partitioning": {"field": "k", "start": 0, "end": 100}},
            None,
            "destination.partitioning",
            "integer-range partitioning needs start, end and interval",
        ),
        (
            {"partitioning": {"field": "k", "start": 0, "end": 1_000_000, "interval": 1}},
            None,
            "destination.partitioning",
            "start/end/interval make 1,000,000 partitions; BigQuery allows 10,000 per table",
        ),
        (
            {
                "partitioning": {
                    "field": "k",
                    "start": 0,
                    "end": 10,
                    "interval": 1,
                    "expiration_days": 3,
                }
            },
            None,
            "destination.partitioning",
            "expiration_days applies to time partitioning only",
        ),
        (
            {"labels": {"Team": "x"}},
            None,
            "destination.labels",
            "label key 'Team': 1 to 63 lowercase letters, digits, `_` or `-`, starting with a "
            "lowercase letter",
        ),
        (
            {"labels": {"team": "Data Eng"}},
            None,
            "destination.labels",
            "label 'team': the value must be up to 63 lowercase letters, digits, `_` or `-`",
        ),
    ],
)
def test_invalid_table_options_name_the_field(
    destination: dict[str, Any], selected: list[str] | None, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _parse(selected, **destination)
    assert error.value.field == field
    assert str(error.value) == f"Invalid job config: `{field}`: {message}"


def test_valid_table_options_parse() -> None:
    """International lowercase letters are allowed in labels; ingestion-time partitioning
    has no field; metadata columns the loader adds may be partitioned on."""
    job = _parse(
        ["a", "b"],
        partitioning={"type": "DAY", "field": "_etl_loaded_at", "expiration_days": 7},
        clustering=["b", "a"],
        labels={"équipe": "données", "cost-center": "42"},
        description="x",
    )
    assert job.destination.partitioning is not None
    assert (job.destination.partitioning.field, job.destination.clustering) == (
        "_etl_loaded_at",
        ["b", "a"],
    )
    assert _parse(partitioning={"type": "HOUR"}).destination.partitioning.field is None


def test_duckdb_ignores_table_options_with_one_warning(tmp_path: Path) -> None:
    """A DuckDB destination configured with BigQuery table options loads normally and names
    the ignored options once in the run's warnings."""
    (tmp_path / "a.csv").write_bytes(b"id,name\n1,ann\n2,bob\n")
    job = JobConfig.parse(
        {
            **BASE,
            "connection_params": {"base_path": str(tmp_path)},
            "file_pattern": "a.csv",
            "destination": {
                "type": "duckdb",
                "path": str(tmp_path / "w.duckdb"),
                "clustering": ["name"],
                "labels": {"team": "data"},
            },
        }
    )
    result = run(job)
    assert result.rows_loaded == 2
    assert result.warnings == [
        "destination options clustering, labels apply to BigQuery only; the DuckDB "
        "destination ignores them"
    ]
