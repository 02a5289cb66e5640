"""The coordinator of a parallel run: fix the plan, hold the snapshot, commit all chunks once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from etl.config import JobConfig
from etl.exceptions import EtlError
from etl.extract.incremental import CursorWindow
from etl.extract.sql import SqlExtractor
from etl.extract.window_plan import plan_window
from etl.parallel.chunk import remove_folder
from etl.parallel.commit import chunk_commit
from etl.parallel.plan import Chunk, ChunkPlan, ChunkReport
from etl.parallel.ranges import RangePlanner
from etl.registry import get_extractor
from etl.run_commit import RunLoad
from etl.state import RunResult, SyncState, Watermark

logger = structlog.get_logger(__name__)

SPLIT_SOURCES = frozenset({"postgresql", "mysql"})
"""Source types whose reads are split into key ranges; every other source is one chunk."""


class ChunkCoordinator:
    """Holds one parallel run: its plan, the source snapshot the chunks read, its commit.

    Made by `chunk_plan` (this class); use it as a context manager. Entering it fixes the plan
    (`coordinator.plan`, a `ChunkPlan`): the destination's load log is read (roll-forward and
    fence entry as `etl.run`); for a PostgreSQL/MySQL table or custom SQL the source is opened,
    the in-flight cap probed (etl/extract/inflight.py), a REPEATABLE READ snapshot begun, the
    window's upper bound read in it, and (PostgreSQL) the snapshot exported with
    `pg_export_snapshot()`; then `job.parallelism` key ranges of similar size are planned from
    the database's statistics (etl/parallel/ranges.py; never a full scan). Custom SQL is split
    on the cursor's window only; other sources (files, BigQuery) get a one-chunk `single` plan.
    Fewer chunks than asked for are planned when the statistics hold fewer split points.

    While inside the `with` block the PostgreSQL snapshot stays exported (the coordinator's
    transaction is open), so chunk readers anywhere may import it; leaving the block ends the
    transaction (chunks not yet read can then no longer be) and removes `<staging>/<run_id>/`.

    Args:
        job: the validated job; `job.parallelism` is the number of chunks wanted.
        state: the state after the last successful run; None or empty for a first run.
        run_id: the run's id (stamped on the rows, names the staging folder).
        staging: a local directory, or an fsspec URL (`gs://bucket/prefix`) every chunk reader
            and the committer can reach; parts go to `<staging>/<run_id>/`.
        full_refresh: as `etl.run`: ignore the state, read everything, replace the table.
        fault_hook: test-only phase callback (`etl.pipeline.FaultHook`).
        keep_staging: leave `<staging>/<run_id>/` in place at exit (debugging).

    Raises (on enter):
        TransientError: source or destination unreachable.
        TableOwnedError: another pipeline owns the destination table.
        NullCursorError, SourceQueryError, TerminalError: as `etl.run`.
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
            try:
                remove_folder(self._plan.run_folder)
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

    def _make_plan(self) -> ChunkPlan:
        job = self.job
        destination = RunLoad(job, self.run_id, fault_hook=self.fault_hook)
        start = destination.start(self.state, full_refresh=self.full_refresh)
        common: dict[str, Any] = {
            "run_id": self.run_id,
            "source_type": job.source_type,
            "fence_run_id": start.fence.expected_run_id,
            "pipeline_id": start.fence.pipeline_id,
            "write_disposition": start.write_disposition,
            "staging": self.staging,
            "state": start.state,
            "reconciled_run_id": start.reconciled_run_id,
            "started_at": destination.started.isoformat(),
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
            return self._plan_sql(extractor, self._connection, start.state, common)
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
        predicates: list[str | None]
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


chunk_plan = ChunkCoordinator
"""`chunk_plan(job, state, *, run_id, staging, ...)`: the coordinator of a parallel run (see
`ChunkCoordinator`); entering it fixes the plan."""
