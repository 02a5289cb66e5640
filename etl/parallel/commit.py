"""The commit of a parallel run: every chunk's staged parts and the new state, one transaction."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from etl.config import JobConfig
from etl.exceptions import SupersededError, TerminalError
from etl.extract.window_plan import plan_window
from etl.load.base import Fence, LoadRequest, MergeKey, job_labels
from etl.parallel.chunk import filesystem
from etl.parallel.plan import ChunkPlan, ChunkReport
from etl.registry import get_loader
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import RunResult, SyncState

logger = structlog.get_logger(__name__)


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
    """Load the parts of one report per chunk and commit them with the new state, all or nothing.

    Two ways are supported: the coordinator's own process commits (`ChunkCoordinator.commit`,
    what `run_parallel` does; it is alive anyway while PostgreSQL chunks read its snapshot), or
    any other process that has the job, the plan and the reports (e.g. the Celery task that saw
    the last chunk finish) calls this function; it needs the parts (the staging location) and
    the destination, not the source, and may run after the coordinator's snapshot has ended,
    provided the coordinator was entered with `keep_staging=True` (its exit removes the parts
    otherwise; pass `cleanup=True` here then). The
    parts stream through the destination's loader in chunk order (Arrow batches of
    `job.chunk_size` rows: memory stays bounded) in one load: DuckDB inserts them inside the
    run's transaction; BigQuery stages them into the run's staging table with Parquet load
    jobs, then runs the usual commit. The fence, merge, catalog swap and load-log entry are
    those of `etl.run`. The new watermark is the plan's upper bound, which under PostgreSQL's
    shared snapshot is the largest cursor value over the chunks (as a one-process run);
    boundary keys are the union of the chunks'.

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
    clock = time.perf_counter()
    if run_id is not None and run_id != plan.run_id:
        raise ChunkPlanError(run_id, f"the plan is run {plan.run_id}'s")
    ordered = _ordered_reports(plan, reports)
    column_map = dict(plan.state.column_map)
    for report in ordered:
        for source, dest in report.column_map.items():
            if column_map.setdefault(source, dest) != dest:
                raise ChunkPlanError(
                    plan.run_id,
                    f"chunk {report.index} named column `{source}` `{dest}`, another "
                    f"`{column_map[source]}`",
                )
    log = logger.bind(run_id=plan.run_id, source_type=job.source_type, table=job.dest_table_name)
    loader = get_loader(job.destination.type)(job.destination)
    loader.job_labels = job_labels(plan.run_id, job.load_type, job.pipeline_id)
    fence = Fence(expected_run_id=plan.fence_run_id, pipeline_id=plan.pipeline_id)
    counters = {"rows_loaded": 0}
    bytes_extracted = sum(report.bytes_extracted for report in ordered)
    committed: list[SyncState] = []

    def fault(phase: str) -> None:
        if fault_hook is not None:
            fault_hook(phase)

    def on_batch(rows: int) -> None:
        counters["rows_loaded"] += rows
        fault("load.batch")
        if progress is not None:
            progress(counters["rows_loaded"], bytes_extracted)

    def finalize() -> SyncState:
        new_state = _next_state(job, plan, ordered).model_copy(
            update={"column_map": column_map, "last_run_id": plan.run_id}
        )
        committed.append(new_state)
        fault("load.before_commit")
        return new_state

    def merge_key() -> MergeKey:
        if job.is_file_source:
            order_by = [SOURCE_FILE_COLUMN]
        else:
            assert job.timestamp_column is not None
            order_by = [column_map.get(job.timestamp_column, job.timestamp_column)]
        return MergeKey(
            primary_key=[column_map.get(c, c) for c in job.primary_key], order_by=order_by
        )

    rejects = [report.rejects for report in ordered if report.rejects]
    request = LoadRequest(
        table=job.dest_table_name,
        batches=_part_batches(ordered, job.chunk_size),
        write_disposition=plan.write_disposition,  # type: ignore[arg-type]
        run_id=plan.run_id,
        finalize=finalize,
        replace_files=[f for report in ordered for f in report.replaced_files],
        on_batch=on_batch,
        fault_hook=fault,
        fence=fence,
        rejected_rows=(lambda: _read_table(rejects)) if rejects else None,
        allow_widen_to_string=job.allow_widen_to_string,
        merge_key=merge_key if job.load_type == "merge" else None,
        column_sources=lambda: {d: s for s, d in column_map.items()},
        on_unrepresentable=job.on_unrepresentable,
    )
    try:
        loaded = loader.load(request)
    except SupersededError as exc:
        log.warning("run.superseded", planned_from=exc.expected_run_id, found=exc.found_run_id)
        raise
    finally:
        loader.close()
    fault("load.after_commit")
    if cleanup:
        fs, path = filesystem(plan.run_folder)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    warnings = _unique([*plan.notes, *(w for report in ordered for w in report.warnings)])
    warnings += loaded.warnings  # values the destination changed (NULL arrays)
    ignored = job.destination.ignored_options_warning()
    if ignored:
        warnings.append(ignored)
    source_names = {dest: source for source, dest in column_map.items()}
    skipped = sum(report.rows_skipped for report in ordered)
    started = dt.datetime.fromisoformat(plan.started_at) if plan.started_at else None
    finished = dt.datetime.now(dt.UTC)
    result = RunResult(
        run_id=plan.run_id,
        rows_extracted=sum(report.rows for report in ordered) + skipped,
        rows_loaded=loaded.rows_loaded,
        rows_skipped=skipped,
        rows_rejected=sum(report.rows_rejected for report in ordered),
        bytes_extracted=bytes_extracted,
        files_loaded=[f for report in ordered for f in report.files_loaded],
        files_skipped=sum(report.files_skipped for report in ordered),
        warnings=warnings,
        destination_table=f"{job.destination.dataset}.{job.dest_table_name}",
        schema=[
            {
                "name": col["name"],
                "source_name": source_names.get(col["name"], col["name"]),
                "type": col["type"],
            }
            for col in loaded.schema
        ],
        state=committed[-1],
        reconciled_run_id=plan.reconciled_run_id,
        started_at=plan.started_at,
        finished_at=finished.isoformat(),
        duration_s=round(
            (finished - started).total_seconds() if started else time.perf_counter() - clock, 3
        ),
    )
    log.info(
        "run.succeeded",
        chunks=len(ordered),
        rows_extracted=result.rows_extracted,
        rows_loaded=result.rows_loaded,
        bytes=result.bytes_extracted,
        duration_s=result.duration_s,
    )
    return result


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


def _part_batches(reports: list[ChunkReport], batch_rows: int) -> Iterator[pa.RecordBatch]:
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
