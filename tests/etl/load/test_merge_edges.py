"""Merge edge cases (issue 13 item 1), on DuckDB and the BigQuery emulator:

- a row whose content goes A -> B -> A at an unchanged cursor value (at the watermark, and
  inside the look-back) must come back as A: the boundary keys of merge (row hashes prefixed
  with the primary key) drop a key's earlier versions when it is read again, so the stored
  hash of A cannot mark the reverted row as loaded and leave the replaced version B in place;
- a full refresh of a file source with merge leaves one row per primary key (the latest by
  the merge rule: the file later in path order), as merging the same files would, instead of
  every file's row.

Peers' reports: dlt's merge dedup on the cursor value dropping updates
(https://github.com/dlt-hub/dlt/issues/1131), duplicates left by a merge full refresh / replace
of keyed data (https://github.com/dlt-hub/dlt/issues/3023), Airbyte's dedup keeping a stale
record at an equal cursor (https://github.com/airbytehq/airbyte/issues/21500).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import JobConfig, SyncState, run
from etl.exceptions import PrimaryKeyError
from tests.etl.load.test_merge import Source, _dest_rows, _destination
from tests.etl.support import DATASET, bq_rows, duck_query

pytestmark = pytest.mark.integration


# the window is the same code for both databases (the five-run merge test reads both), so
# PostgreSQL only here (budget of make test)
@pytest.mark.parametrize(
    ("source_kind", "dest_kind"), [("postgresql", "duckdb"), ("postgresql", "bigquery")]
)
def test_content_reverting_at_an_unchanged_cursor_is_loaded_again(
    request: pytest.FixtureRequest, tmp_path: Path, source_kind: str, dest_kind: str
) -> None:
    """id 1 sits at the watermark, id 2 inside the look-back; both go new -> paid -> new
    without their cursor moving: after each run the destination equals the source, and an
    idle run loads nothing."""
    namespace = request.getfixturevalue(
        "pg_schema" if source_kind == "postgresql" else "mysql_database"
    )
    source = Source(source_kind, namespace)
    destination = _destination(dest_kind, tmp_path, request)
    job = JobConfig.parse(source.config(destination))
    state = SyncState()
    loaded = []
    for status, amount in (("new", "1.00"), ("paid", "1.50"), ("new", "1.00")):
        source.upsert(1, 30, status, amount)  # the watermark
        source.upsert(2, 0, status, amount)  # 30 s below it, inside the 60 s look-back
        result = run(job, state)
        state = result.state
        loaded.append(result.rows_loaded)
        assert _dest_rows(dest_kind, destination, request) == source.rows(), status
    assert loaded == [2, 2, 2]
    idle = run(job, state)
    assert idle.rows_loaded == 0
    assert _dest_rows(dest_kind, destination, request) == source.rows()
    # the state keeps one version per key: the current one
    assert len(idle.state.boundary_keys) == 2
    assert sorted(key.rpartition("#")[0] for key in idle.state.boundary_keys) == ["[1]", "[2]"]


@pytest.mark.parametrize("dest_kind", ["duckdb", "bigquery"])
def test_full_refresh_of_files_with_merge_keeps_one_row_per_key(
    request: pytest.FixtureRequest, tmp_path: Path, dest_kind: str
) -> None:
    """Keys 2 and 3 are in both files: a full refresh swaps in one row per key, b.csv's (later
    in path order), equal to a merge of the same files; a file holding one key twice fails the
    refresh naming key and file, leaving the table as it was."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,status\n1,new\n2,new\n3,new\n")
    (folder / "b.csv").write_text("id,status\n2,paid\n3,void\n4,new\n")
    destination = _destination(dest_kind, tmp_path, request)
    job = JobConfig.parse(
        {
            "source_type": "local",
            "connection_params": {"base_path": str(folder)},
            "file_format": "csv",
            "file_pattern": "*.csv",
            "load_type": "merge",
            "primary_key": ["id"],
            "dest_table_name": "items",
            "destination": destination,
        }
    )

    def rows() -> list[tuple]:
        sql = "SELECT id, status, _etl_source_file FROM {} ORDER BY id, _etl_source_file"
        if dest_kind == "duckdb":
            return duck_query(Path(destination["path"]), sql.format(f"{DATASET}.items"))
        client = request.getfixturevalue("bigquery_client")
        return bq_rows(client, sql.format(f"`{destination['dataset']}.items`"))

    merged = [(1, "new", "a.csv"), (2, "paid", "b.csv"), (3, "void", "b.csv"), (4, "new", "b.csv")]
    state = run(job).state
    assert rows() == merged
    refreshed = run(job, state, full_refresh=True)
    assert refreshed.rows_loaded == 6  # every file row staged, one per key swapped in
    assert rows() == merged
    (folder / "c.csv").write_text("id,status\n5,new\n5,paid\n")
    with pytest.raises(
        PrimaryKeyError,
        match=r"2 rows of this run have the key \(5\) and the same `_etl_source_file` = c\.csv",
    ):
        run(job, refreshed.state, full_refresh=True)
    assert rows() == merged
