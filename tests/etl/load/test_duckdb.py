"""DuckDB loader (etl/load/duckdb/): append, atomic replace, schema evolution, all-or-nothing
loads with the state in the same commit, and reconciliation of a run whose state was lost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from etl import JobConfig, SchemaChangeError, SyncState, Watermark, run
from etl.config import DestinationConfig
from etl.load.base import LoadRequest
from etl.load.duckdb import DuckDbLoader
from tests.etl.support import DATASET, duck_count, duck_query, duck_table_exists, job_config


def _loader(path: Path) -> DuckDbLoader:
    return DuckDbLoader(DestinationConfig(type="duckdb", path=str(path), dataset=DATASET))


def _state(value: str) -> SyncState:
    return SyncState(watermark=Watermark(value=value, type="integer"))


def _load(
    path: Path,
    batches: list[pa.RecordBatch] | Iterator[pa.RecordBatch],
    run_id: str,
    *,
    disposition: str = "append",
    state: SyncState | None = None,
    replace_files: list[str] | None = None,
) -> int:
    request = LoadRequest(
        table="t",
        batches=iter(batches),
        write_disposition=disposition,  # type: ignore[arg-type]
        run_id=run_id,
        finalize=lambda: state or _state(run_id.removeprefix("r")),
        replace_files=replace_files or [],
    )
    return _loader(path).load(request).rows_loaded


def _batch(**columns: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


@pytest.mark.parametrize(
    ("disposition", "rows_after"),
    [("append", 4), ("replace", 2)],
    ids=["append-adds", "replace-overwrites"],
)
def test_load_twice(duckdb_path: Path, disposition: str, rows_after: int) -> None:
    """Loading the same 2 rows twice leaves `rows_after` rows, each stamped with its run id and
    a UTC load time."""
    rows = _batch(id=[1, 2], name=["a", "b"])
    before = dt.datetime.now(dt.UTC)

    _load(duckdb_path, [rows], "r1", disposition=disposition)
    _load(duckdb_path, [rows], "r2", disposition=disposition)

    assert duck_count(duckdb_path, "t") == rows_after
    stamps = duck_query(
        duckdb_path,
        f"SELECT _etl_run_id, count(*), min(_etl_loaded_at) FROM {DATASET}.t GROUP BY 1 ORDER BY 1",
    )
    expected_runs = [("r1", 2), ("r2", 2)] if disposition == "append" else [("r2", 2)]
    assert [(run_id, count) for run_id, count, _ in stamps] == expected_runs
    assert all(loaded_at >= before for _, _, loaded_at in stamps)
    assert _loader(duckdb_path).last_committed("t").run_id == "r2"
    assert _loader(duckdb_path).last_committed("t").state == _state("2")
    assert not duck_table_exists(duckdb_path, "t__etl_staging")


def test_new_columns_are_added_and_integers_widened(duckdb_path: Path) -> None:
    """A later batch with a new column adds it (earlier rows NULL); int32 widens to int64."""
    _load(duckdb_path, [pa.RecordBatch.from_arrays([pa.array([1], pa.int32())], names=["n"])], "r1")

    _load(
        duckdb_path,
        [
            pa.RecordBatch.from_arrays(
                [pa.array([2**40], pa.int64()), pa.array(["x"])], names=["n", "extra"]
            )
        ],
        "r2",
    )

    assert duck_query(duckdb_path, f"SELECT n, extra FROM {DATASET}.t ORDER BY n") == [
        (1, None),
        (2**40, "x"),
    ]
    assert duck_query(
        duckdb_path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 't' AND column_name IN ('n', 'extra') ORDER BY 1",
        [DATASET],
    ) == [("extra", "VARCHAR"), ("n", "BIGINT")]


def test_incompatible_type_change_fails_and_writes_nothing(duckdb_path: Path) -> None:
    """A column changing from integer to text fails naming the column and both types; the table
    and the load log stay as they were."""
    _load(duckdb_path, [_batch(n=[1, 2])], "r1")

    with pytest.raises(
        SchemaChangeError,
        match=r"Column `n` of t is BIGINT in the destination "
        r"but VARCHAR in the source",
    ):
        _load(duckdb_path, [_batch(n=[3]), _batch(n=["three"])], "r2")

    assert duck_query(duckdb_path, f"SELECT n FROM {DATASET}.t ORDER BY n") == [(1,), (2,)]
    assert _loader(duckdb_path).last_committed("t").run_id == "r1"


def test_failure_mid_stream_rolls_back_everything(duckdb_path: Path) -> None:
    """When the batch stream fails after some batches were inserted, neither rows, nor the new
    table, nor a load-log entry remain."""

    def batches() -> Iterator[pa.RecordBatch]:
        yield _batch(id=[1, 2, 3])
        raise RuntimeError("source connection lost")

    with pytest.raises(RuntimeError, match="source connection lost"):
        _load(duckdb_path, batches(), "r1")

    assert not duck_table_exists(duckdb_path, "t")
    assert _loader(duckdb_path).last_committed("t") is None


def test_replace_files_deletes_their_earlier_rows(duckdb_path: Path) -> None:
    """Rows of a re-loaded source file are replaced in the same commit; other files' rows stay."""
    _load(duckdb_path, [_batch(id=[1, 2, 3], _etl_source_file=["a.csv", "a.csv", "b.csv"])], "r1")

    _load(duckdb_path, [_batch(id=[10], _etl_source_file=["a.csv"])], "r2", replace_files=["a.csv"])

    assert duck_query(duckdb_path, f"SELECT id, _etl_source_file FROM {DATASET}.t ORDER BY id") == [
        (3, "b.csv"),
        (10, "a.csv"),
    ]


def test_empty_catalog_snapshot_keeps_columns_and_drops_rows(duckdb_path: Path) -> None:
    """A catalog load of zero rows leaves the table with its columns and no rows."""
    _load(duckdb_path, [_batch(id=[1, 2])], "r1", disposition="replace")

    _load(duckdb_path, [], "r2", disposition="replace")

    assert duck_count(duckdb_path, "t") == 0
    assert _loader(duckdb_path).last_committed("t").run_id == "r2"


def test_lost_state_is_reconciled_without_duplicates(tmp_path: Path, duckdb_path: Path) -> None:
    """If a run's load committed but its state was never saved, the next run adopts that run's
    state from the destination's load log and loads nothing twice."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id,name\n1,a\n2,b\n")
    job = JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(tmp_path / "in")},
            file_format="csv",
            dest_table_name="t",
        )
    )
    first = run(job)

    again = run(job, SyncState())  # the state of `first` was lost

    assert again.reconciled_run_id == first.run_id
    assert again.rows_loaded == 0
    assert duck_count(duckdb_path, "t") == 2
    assert again.state.files == first.state.files
