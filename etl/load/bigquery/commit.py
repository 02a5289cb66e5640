"""The BigQuery loader's commit: the fenced multi-statement transaction (append, merge) or the
catalog swap, the load-log entry, and the rejects side table."""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl.bigquery_client import (
    bigquery,
    rate_limit_retry,
)
from etl.exceptions import (
    EtlError,
    PrimaryKeyError,
)
from etl.load.base import (
    LOAD_LOG_TABLE,
    LOADED_AT_COLUMN,
    REJECTED_SUFFIX,
    RUN_ID_COLUMN,
    Fence,
    LoadRequest,
    MergeKey,
    check_fence,
    duplicate_reason,
)
from etl.load.bigquery.sql import literal
from etl.load.bigquery.types import schema_fields

FENCE_ERROR = re.compile(r"etl-fence\[run=(.*?);owner=(.*?)\]etl-fence-end", re.DOTALL)
"""The message of the commit script's `ERROR()` when the load log moved on: the newest entry's
run id and pipeline id (empty for none / NULL)."""


class CommitMixin:
    """The commit step of `BigQueryLoader` (needs its `client`, `_call`, `_query`, `_wait`)."""

    def _commit(self, request: LoadRequest, staging: str, columns: dict, rows: int) -> None:
        target = self.table_id(request.table)
        exists = self._table_or_none(target)
        if columns:
            if exists is None:
                self._create(target, list(columns.values()), layout=True)
            elif request.write_disposition in ("append", "merge"):
                self._evolve_target(
                    exists, columns, request.table, staging, request.allow_widen_to_string
                )
        merge = None
        if request.write_disposition == "merge" and columns:
            assert request.merge_key is not None
            target_columns = list(exists.schema) if exists is not None else []
            merge = self._merge_statement(
                request.table, staging, columns, target_columns, request.merge_key()
            )
        state = request.finalize()
        # literals, not query parameters: scripts with parameters are not supported everywhere
        # (the BigQuery emulator drops them); `literal` escapes per the lexical rules.
        fence = request.fence
        owner = literal(fence.pipeline_id) if fence is not None else "NULL"
        log_insert = (
            f"INSERT INTO `{self.table_id(LOAD_LOG_TABLE)}` (table_name, run_id, committed_at, "
            f"rows_loaded, state, pipeline_id) VALUES ({literal(request.table)}, "
            f"{literal(request.run_id)}, CURRENT_TIMESTAMP(), {int(rows)}, "
            f"{literal(state.model_dump_json())}, {owner});"
        )
        tag = request.run_id.replace("-", "")[:32]
        rejected_insert = self._stage_rejected(request, tag)
        if request.write_disposition == "replace":
            if fence is not None:
                # the swap cannot join the transaction: refuse a stale plan before it
                newest = self._newest(request.table)
                found = newest.get(request.table)
                check_fence(
                    request.table, fence, found[0] if found else None, found[2] if found else None
                )
            if columns and request.merge_key is not None:
                # a merge's full refresh: one row per key, as merging the rows would leave
                self._keep_latest(request.table, staging, request.merge_key())
            if columns:
                copy = bigquery.CopyJobConfig(
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                    labels=dict(self.job_labels),
                )
                job = self._call(
                    "snapshot swap",
                    self.client.copy_table,
                    staging,
                    target,
                    job_config=copy,
                    job_id=f"etl_{tag}_swap_{uuid.uuid4().hex[:8]}",
                )
                self._wait(job, f"snapshot swap into {request.table}")
                if request.fault_hook is not None:
                    request.fault_hook("catalog.swap")
                statements = [log_insert]
            else:  # empty snapshot
                statements = [f"DELETE FROM `{target}` WHERE TRUE;"] if exists else []
                statements.append(log_insert)
        else:
            statements = []
            if request.replace_files:
                files = ", ".join(literal(name) for name in request.replace_files)
                # merge deletes no row: a changed file's rows are merged by key like new ones
                if exists is not None and request.write_disposition == "append":
                    statements.append(
                        f"DELETE FROM `{target}` WHERE _etl_source_file IN ({files});"
                    )
                rejected_table = self.table_id(request.table + REJECTED_SUFFIX)
                if self._table_or_none(rejected_table) is not None:
                    # a changed file's earlier rejects go with its earlier rows
                    statements.append(f"DELETE FROM `{rejected_table}` WHERE file IN ({files});")
            if merge is not None:
                statements.append(merge)
            elif columns:
                names = ", ".join(f"`{name}`" for name in columns)
                statements.append(
                    f"INSERT INTO `{target}` ({names}) SELECT {names} FROM `{staging}`;"
                )
            statements.append(log_insert)
        if request.write_disposition == "replace":
            rejected_table = self.table_id(request.table + REJECTED_SUFFIX)
            if self._table_or_none(rejected_table) is not None:
                # a snapshot's rejects are its own: the earlier snapshot's go in this commit
                statements.insert(
                    len(statements) - 1, f"DELETE FROM `{rejected_table}` WHERE TRUE;"
                )
        if rejected_insert:
            statements.insert(len(statements) - 1, rejected_insert)
        if fence is not None:
            statements.insert(0, self._fence_statement(request.table, fence))
        script = "BEGIN TRANSACTION;\n" + "\n".join(statements) + "\nCOMMIT TRANSACTION;"
        # the id names the run, the target table and the state it commits: a retried submission
        # of this commit is found, not run twice; a later run under the same run id (its state
        # lost and adopted from the load log) that read new rows commits a new state, and the
        # same run id in another dataset is another commit, so both run (job ids are unique per
        # project: the fixed `etl_<run>_commit` made them find the old job and drop their rows).
        key = f"{target}\n{state.model_dump_json()}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        base_id = f"etl_{tag}_commit_{digest}"
        attempts: list[int] = []

        def attempt() -> None:
            # a job that failed on a rate limit keeps its id: a retry runs as `<id>_r<n>`, after
            # checking that no earlier attempt committed (its answer lost): the load log entry
            # of this run and state is written by the same transaction as the rows
            number = len(attempts)
            attempts.append(number)
            if number and self._committed(request.table, request.run_id, state_json):
                return
            job_id = base_id if not number else f"{base_id}_r{number}"
            self._query(script, [], job_id=job_id, what=f"commit into {request.table}")

        state_json = state.model_dump_json()
        try:
            # rateLimitExceeded / a short-window quotaExceeded: backoff with jitter; a daily
            # quota is not retried (QuotaExceededError names the limit)
            rate_limit_retry(self.destination.timeout_s)(attempt)()
        except EtlError as exc:
            refused = FENCE_ERROR.search(str(exc))
            if fence is None or refused is None:
                raise
            check_fence(request.table, fence, refused[1] or None, refused[2] or None)
            raise  # unreachable unless the log moved back: keep BigQuery's error

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

    def _merge_statement(
        self, table: str, staging: str, columns: dict, target_columns: list, key: MergeKey
    ) -> str:
        """Check the staged rows of a merge and return the `MERGE` of each key's latest row
        into `table`, run inside the commit's transaction.

        The latest row of a key is the one with the greatest `key.order_by` values (NULL
        lowest); it replaces the table's row with that key whatever the table row's cursor
        (the source's current row wins, also when its cursor moved back), or is inserted. A
        table column the staging lacks is set NULL in a replaced row, as in an appended one.
        Only the staging table is read here; the MERGE itself runs in the commit.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        self._check_keys(table, staging, key)
        names = ", ".join(f"`{name}`" for name in columns)
        partition = ", ".join(f"`{name}`" for name in key.primary_key)
        order = ", ".join(f"`{name}` DESC" for name in key.order_by)  # NULLs sort last in DESC
        latest = (
            f"SELECT {names} FROM (SELECT {names}, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY {order}) AS _etl_version FROM `{staging}`) WHERE _etl_version = 1"
        )
        match = " AND ".join(f"T.`{name}` = S.`{name}`" for name in key.primary_key)
        updates = [f"`{name}` = S.`{name}`" for name in columns if name not in key.primary_key]
        updates += [f"`{f.name}` = NULL" for f in target_columns if f.name not in columns]
        values = ", ".join(f"S.`{name}`" for name in columns)
        return (
            f"MERGE `{self.table_id(table)}` T USING ({latest}) S ON {match} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(updates)} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values});"
        )

    def _check_keys(self, table: str, staging: str, key: MergeKey) -> None:
        """Raise `PrimaryKeyError` when two staged rows share the key and `order_by` values."""
        both = ", ".join(f"`{name}`" for name in [*key.primary_key, *key.order_by])
        rows = list(
            self._query(
                f"SELECT {both}, COUNT(*) AS n FROM `{staging}` GROUP BY {both} "
                "HAVING COUNT(*) > 1 LIMIT 1",
                [],
                what=f"the primary key check of {table}",
            )
        )
        if rows:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, rows[0].values()))

    def _keep_latest(self, table: str, staging: str, key: MergeKey) -> None:
        """Delete from `staging` every row but each key's latest (`_merge_statement`'s rule:
        greatest `order_by` values, NULL lowest), before a merge's full refresh swaps it in.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        self._check_keys(table, staging, key)
        match = " AND ".join(f"T.`{n}` = S.`{n}`" for n in key.primary_key)
        newer: list[str] = []
        tied: list[str] = []
        for name in key.order_by:  # lexicographic: an earlier column decides first
            t, o = f"T.`{name}`", f"S.`{name}`"
            greater = f"({t} > {o} OR ({o} IS NULL AND {t} IS NOT NULL))"
            newer.append(" AND ".join([*tied, greater]))
            tied.append(f"({t} = {o} OR ({t} IS NULL AND {o} IS NULL))")
        self._query(
            f"DELETE FROM `{staging}` S WHERE EXISTS (SELECT 1 FROM `{staging}` T "
            f"WHERE {match} AND ({' OR '.join(newer)}))",
            [],
            what=f"the latest row per key of {table}",
        )

    def _rejected_staging(self, table: str, tag: str) -> str:
        return self.table_id(f"{table}{REJECTED_SUFFIX}__etl_staging_{tag}")

    def _stage_rejected(self, request: LoadRequest, tag: str) -> str | None:
        """Load the run's rejected rows into a staging table; return the statement that appends
        them to `<table>__rejected` in the commit (None when no row was rejected)."""
        rejected = request.rejected_rows() if request.rejected_rows else None
        if rejected is None or not rejected.num_rows:
            return None
        fields = [
            *schema_fields(rejected.schema),
            bigquery.SchemaField(RUN_ID_COLUMN, "STRING"),
            bigquery.SchemaField(LOADED_AT_COLUMN, "TIMESTAMP"),
        ]
        target = self.table_id(request.table + REJECTED_SUFFIX)
        if self._table_or_none(target) is None:
            self._create(target, fields)
        staging = self._rejected_staging(request.table, tag)
        self._call("staging cleanup", self.client.delete_table, staging, not_found_ok=True)
        self._create(staging, fields[:-1], expires=True)
        rows = rejected.append_column(
            RUN_ID_COLUMN, pa.array([request.run_id] * rejected.num_rows, pa.string())
        )
        with tempfile.TemporaryDirectory(prefix="etl-bq-") as tmp:
            path = Path(tmp) / "rejected.parquet"
            pq.write_table(rows, path)
            self._load_part(staging, path, 0, tag, request.table + REJECTED_SUFFIX)
        names = ", ".join(f"`{f.name}`" for f in fields[:-1])
        return (
            f"INSERT INTO `{target}` ({names}, `{LOADED_AT_COLUMN}`) "
            f"SELECT {names}, CURRENT_TIMESTAMP() FROM `{staging}`;"
        )
