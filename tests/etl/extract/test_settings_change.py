"""Changing a transactional table source's settings after it ran, and keyless tables at the
watermark (etl/extract/incremental.py, `SyncState.boundary`), on the real PostgreSQL and
MariaDB servers into DuckDB: nothing is loaded twice, nothing is lost, identical rows keep their
multiplicity, and a change that cannot be reconciled is refused with the reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from etl import JobConfig, SyncState, run
from etl.exceptions import IncrementalSettingsError
from tests.etl.support import DATASET, SqlSource, duck_query, job_config

pytestmark = pytest.mark.integration

BASE = dt.datetime(2024, 3, 1, 12, 0, 0)
"""Cursor values of these tests are fixed, far below any in-flight cap."""


def _create(source: SqlSource, name: str = "events") -> str:
    table = source.table(name)
    if source.source_type == "postgresql":
        source.rows(
            f"CREATE TABLE {table} (id integer, v integer, note text, updated_at timestamptz)"
        )
    else:
        source.rows(
            f"CREATE TABLE {table} (id INT, v INT, note VARCHAR(40), updated_at DATETIME(6))"
        )
    return table


def _at(source: SqlSource, moment: dt.datetime | None) -> Any:
    """A cursor value as the column holds it: UTC instant (PostgreSQL timestamptz) or the UTC
    wall clock (MariaDB DATETIME(6))."""
    if moment is None or source.source_type == "mysql":
        return moment
    return moment.replace(tzinfo=dt.UTC)


def _insert(source: SqlSource, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert `(id, v, note, updated_at)` rows (`updated_at` naive UTC or None)."""
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params = [value for row in rows for value in (*row[:3], _at(source, row[3]))]
    source.rows(f"INSERT INTO {table} (id, v, note, updated_at) VALUES {values}", params)


def _job(source: SqlSource, duckdb_path: Path, table: str, **fields: Any) -> JobConfig:
    fields.setdefault("timestamp_column", "updated_at")
    return JobConfig.parse(
        job_config(
            source.source_type,
            duckdb_path,
            source_table_name=f"{source.namespace}.events",
            load_type="transactional",
            dest_table_name="events",
            **fields,
        )
    )


def _dest(duckdb_path: Path) -> tuple[int, int, int]:
    """(rows, distinct ids, sum of ids) in the destination."""
    return duck_query(
        duckdb_path, f"SELECT count(*), count(DISTINCT id), sum(id) FROM {DATASET}.events"
    )[0]


def _source(source: SqlSource, table: str) -> tuple[int, int, int]:
    row = source.rows(f"SELECT count(*), count(DISTINCT id), sum(id) FROM {table}")[0]
    return (int(row[0]), int(row[1]), int(row[2]))


def test_raising_the_look_back_loads_nothing_again(
    sql_source: SqlSource, duckdb_path: Path
) -> None:
    """5,000 rows one millisecond apart are loaded with no look-back; the look-back then raised
    to 5 s (covering 4,999 of them) loads 0 rows, not 4,999 again (the keys of the first run
    cover only the watermark: the window starts there). Once the watermark moves, the 5 s
    look-back is in force: a row committed late 2 s below the new watermark is loaded, once.

    Airbyte counts the rows synced at the cursor value to avoid re-sending them:
    https://github.com/airbytehq/airbyte/issues/15158 ; dlt's dedup hashes replaced too early
    gave duplicates: https://github.com/dlt-hub/dlt/pull/1062
    """
    table = _create(sql_source)
    _insert(
        sql_source,
        table,
        [(i, i, "a", BASE + dt.timedelta(milliseconds=i)) for i in range(1, 5001)],
    )
    first = run(_job(sql_source, duckdb_path, table))
    assert first.rows_loaded == 5000

    job = _job(sql_source, duckdb_path, table, cursor_lag_seconds=5)
    second = run(job, first.state)
    assert (second.rows_loaded, second.rows_skipped) == (0, 1)
    assert _dest(duckdb_path) == _source(sql_source, table)

    later = BASE + dt.timedelta(seconds=60)
    _insert(sql_source, table, [(6001, 1, "b", later)])
    third = run(job, second.state)
    assert third.rows_loaded == 1
    _insert(sql_source, table, [(6002, 2, "late", later - dt.timedelta(seconds=2))])
    fourth = run(job, third.state)
    fifth = run(job, fourth.state)
    assert (fourth.rows_loaded, fifth.rows_loaded) == (1, 0)
    assert _dest(duckdb_path) == _source(sql_source, table) == (5002, 5002, 12_514_503)


def test_lowering_the_look_back_loads_nothing_again(
    sql_source: SqlSource, duckdb_path: Path
) -> None:
    """A look-back lowered from 5 s to 0 after a run loads nothing again, and new rows at the
    watermark still load once.

    https://github.com/airbytehq/airbyte/issues/15158
    """
    table = _create(sql_source)
    _insert(sql_source, table, [(i, i, "a", BASE + dt.timedelta(seconds=i)) for i in range(10)])
    first = run(_job(sql_source, duckdb_path, table, cursor_lag_seconds=5))
    job = _job(sql_source, duckdb_path, table)
    second = run(job, first.state)
    _insert(sql_source, table, [(10, 10, "tie", BASE + dt.timedelta(seconds=9))])
    third = run(job, second.state)
    assert (first.rows_loaded, second.rows_loaded, third.rows_loaded) == (10, 0, 1)
    assert _dest(duckdb_path) == _source(sql_source, table) == (11, 11, 55)


@pytest.mark.parametrize(
    ("before", "after"),
    [([], ["id"]), (["id"], []), (["id"], ["v", "note"])],
    ids=["row-hash-to-key", "key-to-row-hash", "key-to-other-key"],
)
def test_changing_the_primary_key_loads_nothing_again(
    sql_source: SqlSource, duckdb_path: Path, before: list[str], after: list[str]
) -> None:
    """Three rows share the watermark; after the primary key changes, a run re-reads them and
    recognises all three by the key the state was written with (0 loaded), then a new row at the
    watermark is loaded once, and the next run loads nothing.

    dlt generated duplicates when the incremental's key did not match what was stored:
    https://github.com/dlt-hub/dlt/issues/971 and https://github.com/dlt-hub/dlt/issues/3657
    """
    table = _create(sql_source)
    top = BASE + dt.timedelta(hours=1)
    _insert(sql_source, table, [(1, 10, "x", BASE), (2, 20, "x", top), (3, 30, "y", top)])
    _insert(sql_source, table, [(4, 40, "z", top)])
    first = run(_job(sql_source, duckdb_path, table, primary_key=before))
    assert first.rows_loaded == 4

    job = _job(sql_source, duckdb_path, table, primary_key=after)
    second = run(job, first.state)
    _insert(sql_source, table, [(5, 50, "w", top)])
    third = run(job, second.state)
    fourth = run(job, third.state)

    assert (second.rows_loaded, second.rows_skipped) == (0, 3)
    assert (third.rows_loaded, fourth.rows_loaded) == (1, 0)
    assert third.state.boundary is not None and third.state.boundary.key_columns == after
    assert _dest(duckdb_path) == _source(sql_source, table) == (5, 5, 15)


def test_old_key_columns_left_out_of_selected_columns_are_read_to_match(
    sql_source: SqlSource, duckdb_path: Path
) -> None:
    """The key the state was written with (`id`, read but not selected) is no longer among the
    columns read after the key became `v`: it is read anyway to recognise the rows already
    loaded, and never loaded.

    https://github.com/dlt-hub/dlt/issues/3657
    """
    table = _create(sql_source)
    _insert(sql_source, table, [(1, 10, "x", BASE), (2, 20, "x", BASE)])
    first = run(
        _job(
            sql_source,
            duckdb_path,
            table,
            primary_key=["id"],
            selected_columns=["v", "updated_at"],
        )
    )
    job = _job(
        sql_source, duckdb_path, table, primary_key=["v"], selected_columns=["v", "updated_at"]
    )
    second = run(job, first.state)
    _insert(sql_source, table, [(3, 30, "x", BASE)])
    third = run(job, second.state)
    assert (first.rows_loaded, second.rows_loaded, third.rows_loaded) == (2, 0, 1)
    assert duck_query(duckdb_path, f"SELECT v FROM {DATASET}.events ORDER BY v") == [
        (10,),
        (20,),
        (30,),
    ]
    columns = duck_query(
        duckdb_path,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'events' AND column_name NOT LIKE '\\_etl%' ESCAPE '\\' "
        "ORDER BY ordinal_position",
        [DATASET],
    )
    assert columns == [("v",), ("updated_at",)]


def test_changing_the_cursor_is_refused(
    sql_source: SqlSource, duckdb_path: Path, tmp_path: Path
) -> None:
    """A new `timestamp_column` cannot tell which rows were loaded under the old one: the run
    is refused naming both columns, nothing is loaded and the destination keeps its rows; the
    old cursor still works.

    Airbyte's cursor state did not match the cursor in use and records were duplicated:
    https://github.com/airbytehq/airbyte/issues/44369
    """
    table = _create(sql_source)
    _insert(sql_source, table, [(i, i, "a", BASE + dt.timedelta(seconds=i)) for i in range(1, 4)])
    first = run(_job(sql_source, duckdb_path, table))
    _insert(sql_source, table, [(4, 4, "b", BASE + dt.timedelta(seconds=9))])

    with pytest.raises(
        IncrementalSettingsError,
        match=r"^`timestamp_column` changed from `updated_at` to `id` since the state was "
        r"written .*\(field `timestamp_column`\)$",
    ):
        run(_job(sql_source, duckdb_path, table, timestamp_column="id"), first.state)

    assert _dest(duckdb_path) == (3, 3, 6)
    again = run(_job(sql_source, duckdb_path, table), first.state)
    assert again.rows_loaded == 1
    assert _dest(duckdb_path) == _source(sql_source, table) == (4, 4, 10)


def test_a_hashed_column_gone_from_the_source_is_refused(
    sql_source: SqlSource, duckdb_path: Path
) -> None:
    """Without a primary key the boundary keys hash whole rows; when a hashed column is dropped
    in the source the rows at the watermark can no longer be recognised: the run is refused
    naming the column, and nothing is loaded.

    https://github.com/dlt-hub/dlt/pull/1062
    """
    table = _create(sql_source)
    _insert(sql_source, table, [(1, 1, "a", BASE), (2, 2, "a", BASE)])
    first = run(_job(sql_source, duckdb_path, table))
    sql_source.rows(f"ALTER TABLE {table} DROP COLUMN note")

    with pytest.raises(
        IncrementalSettingsError, match=r"computed from column `note` \(row hash of a table"
    ):
        run(_job(sql_source, duckdb_path, table), first.state)
    assert _dest(duckdb_path) == (2, 2, 3)


def test_state_without_its_settings_still_dedups(sql_source: SqlSource, duckdb_path: Path) -> None:
    """A state written before the settings were recorded (no `boundary`) is read as before:
    the rows at the watermark are recognised and a new tie is loaded once.

    https://github.com/dlt-hub/dlt/pull/1062
    """
    table = _create(sql_source)
    _insert(sql_source, table, [(1, 1, "a", BASE), (2, 2, "a", BASE)])
    job = _job(sql_source, duckdb_path, table)
    first = run(job)
    legacy = SyncState.model_validate(first.state.model_dump(exclude={"boundary"}))
    assert legacy.boundary is None
    _insert(sql_source, table, [(3, 3, "a", BASE)])
    second = run(job, legacy)
    assert second.rows_loaded == 1
    assert _dest(duckdb_path) == _source(sql_source, table) == (3, 3, 6)


def test_identical_rows_at_the_watermark_keep_their_multiplicity(
    sql_source: SqlSource, duckdb_path: Path
) -> None:
    """A table without a primary key: two identical rows at the watermark are loaded; a third
    identical copy inserted later at the same cursor value is loaded by the next run (3 copies,
    not 2), and a run after that loads nothing. The same holds for identical rows with a NULL
    cursor under `null_cursor: include`.

    dlt keeps one dedup hash per boundary row of a keyless resource:
    https://github.com/dlt-hub/dlt/issues/4030 ; Airbyte tracks the count of rows at the
    cursor value: https://github.com/airbytehq/airbyte/issues/15158
    """
    table = _create(sql_source)
    top = BASE + dt.timedelta(minutes=5)
    same = (7, 70, "same", top)
    _insert(sql_source, table, [(1, 10, "a", BASE), same, same])
    _insert(sql_source, table, [(8, 80, "null", None), (8, 80, "null", None)])
    job = _job(sql_source, duckdb_path, table, null_cursor="include")
    first = run(job)
    assert first.rows_loaded == 5
    assert first.state.boundary_keys.count(first.state.boundary_keys[0]) == 2

    _insert(sql_source, table, [same, (8, 80, "null", None)])
    second = run(job, first.state)
    third = run(job, second.state)

    assert (second.rows_loaded, second.rows_skipped) == (2, 4)
    assert third.rows_loaded == 0
    assert duck_query(
        duckdb_path, f"SELECT id, count(*) FROM {DATASET}.events GROUP BY id ORDER BY id"
    ) == [(1, 1), (7, 3), (8, 3)]
    assert len(third.state.boundary_keys) == 3 and len(third.state.null_keys) == 3
