"""The coordinator of a parallel run: fix the plan, hold the snapshot, commit all chunks once."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from etl.config import JobConfig
from etl.exceptions import EtlError, SupersededError, TerminalError
from etl.extract.incremental import CursorWindow
from etl.extract.sql import SqlExtractor
from etl.extract.window_plan import plan_window
from etl.load.base import Fence, LoadRequest, MergeKey, job_labels
from etl.parallel.chunk import filesystem
from etl.parallel.plan import Chunk, ChunkPlan, ChunkReport
from etl.parallel.ranges import RangePlanner
from etl.registry import get_extractor, get_loader
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import RunResult, SyncState, Watermark

logger = structlog.get_logger(__name__)

SPLIT_SOURCES = frozenset({"postgresql", "mysql"})
"""Source types whose reads are split into key ranges; every other source is one chunk."""


class ChunkPlanError(TerminalError):
    """The reports handed to a commit do not match its plan (missing, duplicated or foreign
    chunks, chunks that named a column differently)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id, self.reason = run_id, reason
        super().__init__(f"Run {run_id} cannot commit its chunks: {reason}. Nothing was loaded.")


class ChunkCoordinator:
    """Holds one parallel run: its plan, the source snapshot the chunks read, its commit.

    Made by `chunk_plan`; use it as a context manager. While inside the `with` block the
    PostgreSQL snapshot stays exported (the coordinator's REPEATABLE READ transaction is
    open), so chunk readers anywhere may import it; leaving the block ends the transaction
    (chunks not yet read can then no longer be) and removes `<staging>/<run_id>/`.
    """

    def __init__(
        self,
        job: JobConfig,
        state: SyncState | None,
        *,
        run_id: str,
        staging: str,
        full_refresh: bool = False,
        fault_hook: Callable[[str], None] | None = None,
        keep_staging: bool = False,
    ) -> None:
        self.job = job
        self.state = state or SyncState()
        self.run_id = run_id
        self.staging = str(staging)
        self.full_refresh = full_refresh
        self.fault_hook = fault_hook
        self.keep_staging = keep_staging
        self._plan: ChunkPlan | None = None
        self._connection: Any = None
        self._extractor: SqlExtractor | None = None

    @property
    def plan(self) -> ChunkPlan:
        """The run's plan (available inside the `with` block)."""
        if self._plan is None:
            raise RuntimeError("the chunk plan is made when the coordinator is entered")
        return self._plan

    def __enter__(self) -> ChunkCoordinator:
        try:
            self._plan = self._make_plan()
        except BaseException:
            self.close()
            raise
        logger.info(
            "parallel.planned",
            run_id=self.run_id,
            chunks=len(self._plan.chunks),
            split=self._plan.split,
            snapshot=self._plan.snapshot,
            upper=self._plan.upper.value if self._plan.upper else None,
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the snapshot transaction and remove the run's staging folder; idempotent."""
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001  closing a broken connection must not mask the error
                pass
            self._connection = None
        if self._plan is not None and not self.keep_staging:
            fs, path = filesystem(self._plan.run_folder)
            try:
                if fs.exists(path):
                    fs.rm(path, recursive=True)
            except OSError as exc:  # cleanup only; the staged files are never loaded again
                logger.warning(
                    "parallel.staging_cleanup_failed", run_id=self.run_id, error=str(exc)
                )

    def commit(
        self,
        reports: Sequence[ChunkReport],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        """Load every chunk's parts and commit them with the new state in one transaction.

        See `chunk_commit`, which this calls with the coordinator's plan.
        """
        return chunk_commit(
            self.job,
            self.state,
            self.plan,
            reports,
            run_id=self.run_id,
            progress=progress,
            fault_hook=self.fault_hook,
        )

    def _fault(self, phase: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(phase)

    def _make_plan(self) -> ChunkPlan:
        job = self.job
        started = dt.datetime.now(dt.UTC)
        loader = get_loader(job.destination.type)(job.destination)
        loader.job_labels = job_labels(self.run_id, job.load_type, job.pipeline_id)
        state, reconciled = self.state, None
        last = loader.last_committed(job.dest_table_name, job.owner_id)
        if last is not None and last.run_id != state.last_run_id and not self.full_refresh:
            logger.warning(
                "run.reconcile", committed_run_id=last.run_id, state_run_id=state.last_run_id
            )
            state, reconciled = last.state, last.run_id
        write_disposition: str = job.write_disposition
        if self.full_refresh:
            state = SyncState(column_map=state.column_map)
            write_disposition = "replace"
        self._fault("run.planned")
        common: dict[str, Any] = {
            "run_id": self.run_id,
            "source_type": job.source_type,
            "fence_run_id": last.run_id if last else None,
            "pipeline_id": job.owner_id,
            "write_disposition": write_disposition,
            "staging": self.staging,
            "state": state,
            "reconciled_run_id": reconciled,
            "started_at": started.isoformat(),
        }
        if job.source_type not in SPLIT_SOURCES:
            return ChunkPlan(
                mode="single",
                chunks=(Chunk(index=0, where=None),),
                split="none",
                snapshot=None,
                upper=None,
                null_count=0,
                notes=(),
                **common,
            )
        extractor = get_extractor(job.source_type)(job)
        assert isinstance(extractor, SqlExtractor)
        self._extractor = extractor
        try:
            self._connection = extractor.connect()
        except Exception as exc:
            raise (extractor.translate_error(exc) or exc) from exc
        try:
            return self._plan_sql(extractor, self._connection, state, common)
        except EtlError:
            raise
        except Exception as exc:
            translated = extractor.translate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    def _plan_sql(
        self, extractor: SqlExtractor, connection: Any, state: SyncState, common: dict[str, Any]
    ) -> ChunkPlan:
        job = self.job
        catalog = job.load_type == "catalog"
        cap = None if catalog else extractor.probe_inflight(connection)
        extractor.begin_snapshot(connection)
        bounds = None if catalog or cap is None else extractor.window_bounds(connection, cap)
        snapshot = None
        if job.source_type == "postgresql":
            (snapshot,) = extractor.fetch_one(connection, "SELECT pg_export_snapshot()")
        estimate = extractor.estimate_rows(connection)
        window = None
        if bounds is not None:
            window = plan_window(
                job, state, upper=bounds.upper, null_count=bounds.null_count
            ).window
        if bounds is not None and bounds.upper is None:
            split, predicates = "none", [None]  # no row in the window: one (empty) chunk
        else:
            lower = window.lower if window is not None else None
            split, predicates, _ = RangePlanner(extractor, connection).plan(
                job.parallelism, lower, bounds.upper if bounds is not None else None
            )
        if window is not None and len(predicates) > 1:
            predicates = self._ties_to_first(extractor, window, bounds, predicates)
        if job.source_type != "postgresql":
            connection.close()  # nothing to hold: MySQL chunks read snapshots of their own
            self._connection = None
        upper = bounds.upper if bounds is not None else None
        return ChunkPlan(
            mode="sql",
            chunks=tuple(Chunk(index=i, where=where) for i, where in enumerate(predicates)),
            split=split,
            snapshot=snapshot,
            upper=Watermark.from_python(upper) if upper is not None else None,
            null_count=bounds.null_count if bounds is not None else 0,
            notes=tuple(bounds.notes) if bounds is not None else (),
            estimated_rows=estimate,
            **common,
        )

    def _ties_to_first(
        self,
        extractor: SqlExtractor,
        window: CursorWindow,
        bounds: Any,
        predicates: list[str | None],
    ) -> list[str | None]:
        """Move every row the boundary dedup must see (cursor at or below the old watermark,
        NULL cursors under `null_cursor: include`) into chunk 0, whatever its key: the dedup
        consumes stored keys copy by copy (etl/extract/incremental.py), which only one reader
        can do exactly."""
        job = self.job
        assert job.timestamp_column is not None
        cursor = extractor.quote(job.timestamp_column)
        ties = []
        if window.old is not None:
            ties.append(f"{cursor} <= {extractor.placeholder(1, window.old.as_python())}")
        if job.null_cursor == "include" and bounds.null_count:
            ties.append(f"{cursor} IS NULL")
        if not ties:
            return predicates
        tie = " OR ".join(ties)
        first, *rest = predicates
        return [f"({first}) OR {tie}", *[f"({where}) AND NOT ({tie})" for where in rest]]


def chunk_plan(
    job: JobConfig,
    state: SyncState | None,
    *,
    run_id: str,
    staging: str,
    full_refresh: bool = False,
    fault_hook: Callable[[str], None] | None = None,
    keep_staging: bool = False,
) -> ChunkCoordinator:
    """Return the coordinator of a parallel run; entering it fixes the plan.

    On enter: the destination's load log is read (roll-forward and fence entry as `etl.run`);
    for a PostgreSQL/MySQL table or custom SQL the source is opened, the in-flight cap probed
    (etl/extract/inflight.py), a REPEATABLE READ snapshot begun, the window's upper bound read
    in it, and (PostgreSQL) the snapshot exported with `pg_export_snapshot()` and held until
    exit; then `job.parallelism` key ranges of similar size are planned from the database's
    statistics (etl/parallel/ranges.py; never a full scan). Custom SQL is split on the cursor's
    window only; other sources (files, BigQuery) get a one-chunk `single` plan. Fewer chunks
    than asked for are planned when the statistics hold fewer split points.

    Args:
        job: the validated job; `job.parallelism` is the number of chunks wanted.
        state: the state after the last successful run; None or empty for a first run.
        run_id: the run's id (stamped on the rows, names the staging folder).
        staging: a local directory, or an fsspec URL (`gs://bucket/prefix`) every chunk reader
            and the committer can reach; parts go to `<staging>/<run_id>/`.
        full_refresh: as `etl.run`: ignore the state, read everything, replace the table.
        fault_hook: test-only phase callback (`etl.pipeline.FaultHook`).
        keep_staging: leave `<staging>/<run_id>/` in place at exit (debugging).

    Returns:
        ChunkCoordinator: a context manager; `coordinator.plan` is the `ChunkPlan`.

    Raises (on enter):
        TransientError: source or destination unreachable.
        TableOwnedError: another pipeline owns the destination table.
        NullCursorError, SourceQueryError, TerminalError: as `etl.run`.
    """
    return ChunkCoordinator(
        job,
        state,
        run_id=run_id,
        staging=staging,
        full_refresh=full_refresh,
        fault_hook=fault_hook,
        keep_staging=keep_staging,
    )


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
