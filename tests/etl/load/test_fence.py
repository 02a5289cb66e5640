"""The loaders' fence and ownership checks (etl/load/base.py), called directly: DuckDB and the
BigQuery emulator, append and replace. The end-to-end runs (a stalled CLI run, a second
pipeline) are tests/etl/test_fence.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import SupersededError, SyncState, TableOwnedError
from etl.config import DestinationConfig
from etl.load.base import Fence, Loader, LoadRequest
from etl.registry import get_loader
from tests.etl.support import DATASET, bigquery_destination, bq_rows, duck_query

pytestmark = pytest.mark.integration


@pytest.fixture(params=["duckdb", "bigquery"])
def destination(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[DestinationConfig, Callable[[str], Any]]:
    """The destination config and a `sql -> rows` reader whose `{d}` is the dataset."""
    if request.param == "duckdb":
        path = tmp_path / "w.duckdb"
        block = {"type": "duckdb", "path": str(path), "dataset": DATASET}
        return DestinationConfig(**block), lambda sql: duck_query(path, sql.format(d=DATASET))
    dataset = request.getfixturevalue("bq_dataset")
    client = request.getfixturevalue("bigquery_client")
    return DestinationConfig(**bigquery_destination(dataset)), lambda sql: bq_rows(
        client, sql.format(d=f"`{dataset}`")
    )


def _load(
    loader: Loader, run_id: str, fence: Fence, *, disposition: str = "append", ids: list[int]
) -> int:
    request = LoadRequest(
        table="t",
        batches=iter([pa.RecordBatch.from_pydict({"id": ids})]),
        write_disposition=disposition,  # type: ignore[arg-type]
        run_id=run_id,
        finalize=lambda: SyncState(last_run_id=run_id),
        fence=fence,
    )
    return loader.load(request).rows_loaded


@pytest.mark.parametrize("disposition", ["append", "replace"])
def test_commit_fenced_on_a_stale_entry_is_refused(
    destination: tuple[DestinationConfig, Callable[[str], Any]], disposition: str
) -> None:
    """Fenced on the newest entry (none, then r1) loads commit; a load fenced on no entry after
    r1 committed raises SupersededError naming both and changes neither the table nor the log;
    a load by another pipeline fenced on r1 raises TableOwnedError naming the owner."""
    config, query = destination
    loader = get_loader(config.type)(config)

    assert _load(loader, "r1", Fence(None, "p"), disposition=disposition, ids=[1, 2]) == 2
    with pytest.raises(SupersededError) as refused:
        _load(loader, "r0", Fence(None, "p"), disposition=disposition, ids=[3])
    assert str(refused.value) == str(SupersededError("t", None, "r1"))
    with pytest.raises(TableOwnedError, match="belongs to pipeline `p`; pipeline `q` may not"):
        _load(loader, "q1", Fence("r1", "q"), disposition=disposition, ids=[4])
    assert sorted(query("SELECT id, _etl_run_id FROM {d}.t")) == [(1, "r1"), (2, "r1")]
    assert query("SELECT run_id, pipeline_id FROM {d}._etl_loads") == [("r1", "p")]

    assert _load(loader, "r2", Fence("r1", "p"), disposition=disposition, ids=[5]) == 1
    expected = [(1, "r1"), (2, "r1"), (5, "r2")] if disposition == "append" else [(5, "r2")]
    assert sorted(query("SELECT id, _etl_run_id FROM {d}.t")) == expected
    assert loader.last_committed("t", "p").run_id == "r2"
    with pytest.raises(TableOwnedError):
        loader.last_committed("t", "q")
    with pytest.raises(TableOwnedError):
        loader.last_committed("t__rejected", "q")
