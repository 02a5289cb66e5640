"""The commit of a parallel run: every chunk's staged parts and the new state, one transaction.

Two ways are supported: the coordinator's own process commits (`ChunkCoordinator.commit`, what
`run_parallel` does; it is alive anyway while PostgreSQL chunks read its snapshot), or any other
process that has the job, the plan and the reports (e.g. the Celery task that saw the last chunk
finish) calls `chunk_commit`; it needs the parts (the staging location) and the destination, not
the source, and may run after the coordinator's snapshot has ended, provided the coordinator was
entered with `keep_staging=True` (its exit removes the parts otherwise; pass `cleanup=True` to
`chunk_commit` then). The parts stream through the destination's loader in chunk order (Arrow
batches of `job.chunk_size` rows: memory stays bounded) in one load: DuckDB inserts them inside
the run's transaction; BigQuery stages them into the run's staging table with Parquet load jobs,
then runs the usual commit. The fence, merge, catalog swap and load-log entry are those of
`etl.run` (one `etl.run_commit.RunLoad`). The new watermark is the plan's upper bound, which
under PostgreSQL's shared snapshot is the largest cursor value over the chunks (as a
one-process run); boundary keys are the union of the chunks'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Sequence
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq

from etl.config import JobConfig, WriteDisposition
from etl.exceptions import TerminalError
from etl.extract.base import ExtractStats
from etl.extract.window_plan import plan_window
from etl.load.base import Fence, LoadResult
from etl.parallel.chunk import filesystem, remove_folder
from etl.parallel.plan import ChunkPlan, ChunkReport
from etl.run_commit import RunLoad, RunStart
from etl.state import RunResult, SyncState


class ChunkPlanError(TerminalError):
    """The reports handed to a commit do not match its plan (missing, duplicated or foreign
    chunks, chunks that named a column differently)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id, self.reason = run_id, reason
        super().__init__(f"Run {run_id} cannot commit its chunks: {reason}. Nothing was loaded.")


def chunk_commit(
    job: JobConfig,
    state: SyncState | None,
    plan: ChunkPlan,
    reports: Sequence[ChunkReport],
    *,
    run_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    fault_hook: Callable[[str], None] | None = None,
    cleanup: bool = False,
) -> RunResult:
    """Load the parts of one report per chunk and commit them with the new state, all or nothing
    (in this process or another one than the coordinator's: see the module docstring).

    Args:
        job: the job the plan was made for.
        state: the caller's state when it planned (informative: the plan holds the state the
            window was computed from, after any roll-forward, and that one is used).
        plan: the run's plan.
        reports: one report per chunk index (a retried chunk: only its successful attempt).
        run_id: must be `plan.run_id` when given.
        progress: optional `(rows_loaded, bytes_extracted)` callback as batches load.
        fault_hook: test-only phase callback (`load.before_commit`, `load.after_commit`...).
        cleanup: remove `<staging>/<run_id>/` after the commit (a committer in another process
            than a coordinator entered with `keep_staging=True`).

    Returns:
        RunResult: as `etl.run` (counts in rows, sizes in bytes, duration in seconds since the
        plan was made), the destination already committed.

    Raises:
        ChunkPlanError: a chunk has no report, two reports name one chunk, or a report is
            another run's; nothing was loaded.
        SupersededError: another run committed into the table after the plan; nothing of this
            run was committed.
        TableOwnedError, SchemaChangeError, PrimaryKeyError, DestinationError: as `etl.run`.
        TransientError: the destination is unreachable; nothing was committed.
    """
    del state  # the plan's copy (after roll-forward) is the one the window came from
    if run_id is not None and run_id != plan.run_id:
        raise ChunkPlanError(run_id, f"the plan is run {plan.run_id}'s")
    ordered = _ordered_reports(plan, reports)
    column_map = _column_map(plan, ordered)
    commit = RunLoad(job, plan.run_id, progress=progress, fault_hook=fault_hook)
    start = _start(plan)
    loaded = _load(job, plan, ordered, column_map, commit, start)
    if cleanup:
        remove_folder(plan.run_folder)
    rejected = sum(report.rows_rejected for report in ordered)
    return commit.result(
        loaded,
        _stats(plan, ordered),
        start,
        rows_rejected=rejected,
        started_at=plan.started_at,
        chunks=len(ordered),
    )


def _start(plan: ChunkPlan) -> RunStart:
    """Return what the coordinator planned the run from (`etl.run_commit.RunLoad.start`)."""
    return RunStart(
        state=plan.state,
        write_disposition=cast(WriteDisposition, plan.write_disposition),
        fence=Fence(expected_run_id=plan.fence_run_id, pipeline_id=plan.pipeline_id),
        reconciled_run_id=plan.reconciled_run_id,
    )


def _load(
    job: JobConfig,
    plan: ChunkPlan,
    reports: list[ChunkReport],
    column_map: dict[str, str],
    commit: RunLoad,
    start: RunStart,
) -> LoadResult:
    """Load the parts of `reports` and commit them with the state the whole window leads to."""
    commit.rows_read = sum(report.rows for report in reports)
    commit.bytes_read = sum(report.bytes_extracted for report in reports)
    rejects = [report.rejects for report in reports if report.rejects]
    return commit.load(
        _part_batches(reports, job.chunk_size),
        start,
        names=lambda: column_map,
        next_state=lambda: _next_state(job, plan, reports),
        replace_files=[f for report in reports for f in report.replaced_files],
        rejected_rows=(lambda: _read_table(rejects)) if rejects else None,
    )


def _stats(plan: ChunkPlan, reports: list[ChunkReport]) -> ExtractStats:
    """Return the chunks' read counters summed, as one extraction's; the plan's notes first."""
    return ExtractStats(
        rows_skipped=sum(report.rows_skipped for report in reports),
        files_skipped=sum(report.files_skipped for report in reports),
        files=[f for report in reports for f in report.files_loaded],
        warnings=_unique([*plan.notes, *(w for report in reports for w in report.warnings)]),
    )


def _column_map(plan: ChunkPlan, reports: list[ChunkReport]) -> dict[str, str]:
    """Return the run's source -> destination column names: the plan state's, and the chunks'
    (which must agree)."""
    column_map = dict(plan.state.column_map)
    for report in reports:
        for source, dest in report.column_map.items():
            if column_map.setdefault(source, dest) != dest:
                raise ChunkPlanError(
                    plan.run_id,
                    f"chunk {report.index} named column `{source}` `{dest}`, another "
                    f"`{column_map[source]}`",
                )
    return column_map


def _ordered_reports(plan: ChunkPlan, reports: Sequence[ChunkReport]) -> list[ChunkReport]:
    by_index: dict[int, ChunkReport] = {}
    for report in reports:
        if report.run_id != plan.run_id:
            raise ChunkPlanError(
                plan.run_id, f"a report of chunk {report.index} is run {report.run_id}'s"
            )
        if report.index in by_index:
            raise ChunkPlanError(plan.run_id, f"chunk {report.index} has two reports")
        if not 0 <= report.index < len(plan.chunks):
            raise ChunkPlanError(plan.run_id, f"the plan has no chunk {report.index}")
        by_index[report.index] = report
    missing = [i for i in range(len(plan.chunks)) if i not in by_index]
    if missing:
        raise ChunkPlanError(plan.run_id, f"chunk(s) {', '.join(map(str, missing))} have no report")
    return [by_index[i] for i in range(len(plan.chunks))]


def _next_state(job: JobConfig, plan: ChunkPlan, reports: list[ChunkReport]) -> SyncState:
    """Return the state one process reading the whole window would have reached."""
    if plan.mode != "sql":
        assert reports[0].next_state is not None
        return reports[0].next_state
    if job.load_type == "catalog":
        return plan.state
    upper = plan.upper.as_python() if plan.upper is not None else None
    window = plan_window(job, plan.state, upper=upper, null_count=plan.null_count).window
    names = list(reports[0].columns)
    if not window.key_columns:
        window.hash_columns = names
    for report in reports:
        window.next_boundary.update(Counter(report.boundary_keys))
        window.next_null.update(Counter(report.null_keys))
        window.read_again.update(report.read_again)
    return window.next_state(plan.state, names)


def _part_batches(
    reports: list[ChunkReport], batch_rows: int
) -> Generator[pa.RecordBatch, None, None]:
    """Yield the rows of every part of `reports`, in chunk and part order, `batch_rows` at a
    time; one empty batch with the columns when no part holds a row (the table gets its
    columns, as in a one-process run)."""
    empty: pa.Schema | None = None
    yielded = False
    for report in reports:
        for part in report.parts:
            fs, path = filesystem(part.path)
            with fs.open(path, "rb") as handle:
                parquet = pq.ParquetFile(handle)
                if empty is None:
                    empty = parquet.schema_arrow
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    if batch.num_rows:
                        yielded = True
                        yield batch
    if not yielded and empty is not None:
        yield pa.RecordBatch.from_pylist([], schema=empty)


def _read_table(paths: list[str]) -> pa.Table:
    tables = []
    for url in paths:
        fs, path = filesystem(url)
        with fs.open(path, "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables)


def _unique(items: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
