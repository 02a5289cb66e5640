"""The BigQuery loader's load log (etl/load/loadlog.py): the dataset and its `_etl_loads`
table, the newest entries, the fence statement that opens a commit script, and the entry it
writes.

Statements carry literals, not query parameters: scripts with parameters are not supported
everywhere (the BigQuery emulator drops them); `literal` escapes per the lexical rules.
"""

from __future__ import annotations

import re

from etl.bigquery_client import api_exceptions, bigquery, retry, translate
from etl.exceptions import EtlError
from etl.load.base import LoadRequest
from etl.load.bigquery.jobs import BigQueryJobs
from etl.load.bigquery.sql import literal
from etl.load.loadlog import (
    LOAD_LOG_TABLE,
    CommittedLoad,
    Fence,
    LogEntry,
    committed_load,
    owned_with,
)
from etl.state import SyncState

_LOG_SCHEMA = [
    ("table_name", "STRING"),
    ("run_id", "STRING"),
    ("committed_at", "TIMESTAMP"),
    ("rows_loaded", "INT64"),
    ("state", "STRING"),
    ("pipeline_id", "STRING"),
]

FENCE_ERROR = re.compile(r"etl-fence\[run=(.*?);owner=(.*?)\]etl-fence-end", re.DOTALL)
"""The message of the commit script's `ERROR()` when the load log moved on: the newest entry's
run id and pipeline id (empty for none / NULL)."""


class LoadLogMixin(BigQueryJobs):
    """The load log of `BigQueryLoader`."""

    _has_pipeline_id = False
    """The load log is known to have its `pipeline_id` column."""

    def last_committed(self, table: str, pipeline_id: str | None = None) -> CommittedLoad | None:
        try:
            self.client.get_table(
                self.table_id(LOAD_LOG_TABLE), retry=retry(self.destination.timeout_s)
            )
        except api_exceptions.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "the load log") from exc
        return committed_load(table, pipeline_id, self._newest(table))

    def _ensure_dataset(self) -> None:
        dataset = bigquery.Dataset(f"{self.destination.project}.{self.destination.dataset}")
        if self.destination.location:
            dataset.location = self.destination.location
        self._call("dataset creation", self.client.create_dataset, dataset, exists_ok=True)
        log = bigquery.Table(
            self.table_id(LOAD_LOG_TABLE),
            schema=[bigquery.SchemaField(name, kind) for name, kind in _LOG_SCHEMA],
        )
        self._call("load log creation", self.client.create_table, log, exists_ok=True)
        if not self._log_has_pipeline_id():
            # a load log made before pipeline ids: its entries stay NULL (owned by no one)
            self._query(
                f"ALTER TABLE `{self.table_id(LOAD_LOG_TABLE)}` "
                "ADD COLUMN IF NOT EXISTS pipeline_id STRING",
                [],
                what="the load log's pipeline_id column",
            )

    def _log_has_pipeline_id(self) -> bool:
        """Whether the load log has its `pipeline_id` column (a query, not the table's schema:
        the emulator's catalog does not show a column added by ALTER TABLE)."""
        if not self._has_pipeline_id:
            try:
                self._query(
                    f"SELECT pipeline_id FROM `{self.table_id(LOAD_LOG_TABLE)}` LIMIT 0",
                    [],
                    what="the load log",
                )
            except EtlError:
                return False
            self._has_pipeline_id = True
        return True

    def _newest(self, table: str) -> dict[str, LogEntry]:
        """Return table name -> the newest load-log entry of each table `owned_with(table)`
        that has one (pipeline_id NULL in a load log older than the column)."""
        owner = "pipeline_id" if self._log_has_pipeline_id() else "CAST(NULL AS STRING)"
        names = ", ".join(literal(name) for name in owned_with(table))
        sql = (
            f"SELECT table_name, run_id, state, {owner} AS pipeline_id "
            f"FROM `{self.table_id(LOAD_LOG_TABLE)}` WHERE table_name IN ({names}) "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY committed_at DESC) = 1"
        )
        rows = self._query(sql, [], what="the load log")
        return {
            row["table_name"]: LogEntry(row["run_id"], row["state"], row["pipeline_id"])
            for row in rows
        }

    def _committed(self, table: str, run_id: str, state_json: str) -> bool:
        """Whether the load log holds the entry of `run_id` committing `state_json` into
        `table` (an earlier attempt of this commit went through)."""
        rows = self._query(
            f"SELECT COUNT(*) AS n FROM `{self.table_id(LOAD_LOG_TABLE)}` "
            f"WHERE table_name = {literal(table)} AND run_id = {literal(run_id)} "
            f"AND state = {literal(state_json)}",
            [],
            what="the load log",
        )
        return any(row["n"] for row in rows)

    def _fence_statement(self, table: str, fence: Fence) -> str:
        """Return the statement that fails the commit script (rolling its transaction back)
        with `FENCE_ERROR`'s message when the newest load-log entry of `table` is not
        `fence.expected_run_id`, or is another pipeline's."""

        def newest(column: str) -> str:
            return (
                f"(SELECT {column} FROM `{self.table_id(LOAD_LOG_TABLE)}` "
                f"WHERE table_name = {literal(table)} ORDER BY committed_at DESC LIMIT 1)"
            )

        found_run, found_owner = newest("run_id"), newest("pipeline_id")
        pipeline = literal(fence.pipeline_id)
        return (
            f"SELECT IF(IFNULL({found_run}, '') != {literal(fence.expected_run_id or '')} "
            f"OR IFNULL({found_owner}, {pipeline}) != {pipeline}, "
            f"ERROR(CONCAT('etl-fence[run=', IFNULL({found_run}, ''), ';owner=', "
            f"IFNULL({found_owner}, ''), ']etl-fence-end')), NULL);"
        )

    def _log_insert(self, request: LoadRequest, rows: int, state: SyncState) -> str:
        """Return the statement recording the load and the state it leads to."""
        owner = literal(request.fence.pipeline_id) if request.fence is not None else "NULL"
        return (
            f"INSERT INTO `{self.table_id(LOAD_LOG_TABLE)}` (table_name, run_id, committed_at, "
            f"rows_loaded, state, pipeline_id) VALUES ({literal(request.table)}, "
            f"{literal(request.run_id)}, CURRENT_TIMESTAMP(), {int(rows)}, "
            f"{literal(state.model_dump_json())}, {owner});"
        )
