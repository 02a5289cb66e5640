"""The destination side of a run, one copy for `etl.run` and a parallel run's commit.

`RunLoad`: adopting the last committed load, the fenced load with its counters, progress and
fault phases, the `RunResult`; and the `merge` key (`merge_key`, `primary_key`, `key_nulls`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import structlog

from etl.config import JobConfig, WriteDisposition
from etl.exceptions import PrimaryKeyError, SupersededError
from etl.extract.base import ExtractStats
from etl.load.base import Fence, LoadRequest, LoadResult, MergeKey, job_labels
from etl.registry import get_loader
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import RunResult, SyncState

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunStart:
    """What a run plans from, after reading the destination's load log."""

    state: SyncState
    """The state the read starts from: the caller's, a committed run's it did not know about
    (rolled forward), or a first run's keeping only the column-name map (full refresh)."""
    write_disposition: WriteDisposition
    """The job's, or `replace` for a full refresh."""
    fence: Fence
    """The newest load-log entry the commit must still find (`etl.load.base.Fence`)."""
    reconciled_run_id: str | None = None
    """The committed run whose state was adopted, if any."""


def merge_key(job: JobConfig, names: dict[str, str]) -> MergeKey:
    """Return a `merge` job's key in destination names (`names`: source -> destination)."""
    if job.is_file_source:
        order_by = [SOURCE_FILE_COLUMN]
    else:
        assert job.timestamp_column is not None
        order_by = [names.get(job.timestamp_column, job.timestamp_column)]
    return MergeKey(primary_key=primary_key(job, names), order_by=order_by)


def primary_key(job: JobConfig, names: dict[str, str]) -> list[str]:
    """Return `job.primary_key` in destination names (`names`: source -> destination)."""
    return [names.get(c, c) for c in job.primary_key]


def key_nulls(batch: pa.RecordBatch, key: list[str], table: str) -> Iterator[tuple[str, int]]:
    """Yield `(column, NULL rows)` for each primary-key column of `batch`, in key order.

    Raises:
        PrimaryKeyError: the next key column is missing from the batch.
    """
    for name in key:
        if name not in batch.schema.names:
            raise PrimaryKeyError(
                table,
                key,
                f"column `{name}` is not among the loaded columns; add it to selected_columns",
            )
        yield name, batch.column(name).null_count


def null_key_error(table: str, key: list[str], column: str, rows: int) -> PrimaryKeyError:
    """Return the error of a `merge` run that read `rows` rows with a NULL key `column`."""
    return PrimaryKeyError(table, key, f"column `{column}` is NULL in {rows} row(s) of this run")


class RunLoad:
    """The load and commit of one run into `job.destination`, and its `RunResult`.

    Owns the run's loader (labelled with the run's BigQuery job labels), its counters (rows and
    bytes read, rows loaded), the progress callback (`(rows_loaded, bytes_read)`, called when the
    figures changed), the fault phases (`etl.pipeline.FaultHook`) and the state committed.
    """

    def __init__(
        self,
        job: JobConfig,
        run_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        fault_hook: Callable[[str], None] | None = None,
    ) -> None:
        self.started = dt.datetime.now(dt.UTC)
        self._clock = time.perf_counter()
        self.job, self.run_id = job, run_id
        self.log = logger.bind(
            run_id=run_id, source_type=job.source_type, table=job.dest_table_name
        )
        self.loader = get_loader(job.destination.type)(job.destination)
        self.loader.job_labels = job_labels(run_id, job.load_type, job.pipeline_id)
        self.rows_read = self.bytes_read = self.rows_loaded = 0
        self.committed: SyncState | None = None
        self._progress, self._fault_hook = progress, fault_hook
        self._reported = (0, 0)
        self._names: Callable[[], dict[str, str]] = dict

    def start(self, state: SyncState, *, full_refresh: bool) -> RunStart:
        """Plan the run from `state` and the newest entry of the table's load log, then pass
        the `run.planned` phase.

        A committed load by a run `state` does not know about (the process died between the
        load and the state write) is adopted, so nothing is loaded twice; unless
        `full_refresh`, which starts from a first run's state (column-name map kept) and
        replaces the table.

        Raises:
            TableOwnedError: another pipeline owns the table (`Loader.last_committed`).
            TransientError: the destination is unreachable.
        """
        job, log = self.job, self.log
        last = self.loader.last_committed(job.dest_table_name, job.owner_id)
        reconciled = None
        # a full refresh replaces the table from scratch: no committed state is adopted
        if last is not None and last.run_id != state.last_run_id and not full_refresh:
            log.warning(
                "run.reconcile", committed_run_id=last.run_id, state_run_id=state.last_run_id
            )
            state, reconciled = last.state, last.run_id
        write_disposition = job.write_disposition
        if full_refresh:
            log.info("run.full_refresh", load_type=job.load_type)
            state = SyncState(column_map=state.column_map)
            write_disposition = "replace"
        fence = Fence(expected_run_id=last.run_id if last else None, pipeline_id=job.owner_id)
        self.fault("run.planned")
        return RunStart(state, write_disposition, fence, reconciled)

    def fault(self, phase: str) -> None:
        """Pass test-only phase `phase` (`etl.pipeline.FaultHook`)."""
        if self._fault_hook is not None:
            self._fault_hook(phase)

    def report(self) -> None:
        """Call the progress callback with `(rows_loaded, bytes_read)` if they changed."""
        figures = (self.rows_loaded, self.bytes_read)
        if self._progress and figures != self._reported:
            self._reported = figures
            self._progress(*figures)

    def load(
        self,
        batches: Generator[pa.RecordBatch, None, None],
        start: RunStart,
        *,
        names: Callable[[], dict[str, str]],
        next_state: Callable[[], SyncState],
        replace_files: list[str],
        rejected_rows: Callable[[], pa.Table] | None,
        source_line: Callable[[str, int], int | None] | None = None,
    ) -> LoadResult:
        """Load `batches` fenced on `start` and commit them with `next_state()` (its column map
        `names()`, the current source -> destination map); close `batches` and the loader.

        Raises:
            SupersededError: another run committed since `start.fence` (logged here).
            TableOwnedError, SchemaChangeError, PrimaryKeyError, DestinationError,
                TransientError: as `Loader.load`.
        """
        self._names = names
        job = self.job
        request = LoadRequest(
            table=job.dest_table_name,
            batches=batches,
            write_disposition=start.write_disposition,
            run_id=self.run_id,
            finalize=lambda: self._finalize(next_state),
            replace_files=replace_files,
            on_batch=self._on_batch,
            fault_hook=self.fault,
            fence=start.fence,
            rejected_rows=rejected_rows,
            allow_widen_to_string=job.allow_widen_to_string,
            merge_key=(lambda: merge_key(job, names())) if job.load_type == "merge" else None,
            column_sources=lambda: {d: s for s, d in names().items()},
            source_line=source_line,
            on_unrepresentable=job.on_unrepresentable,
        )
        try:
            loaded = self.loader.load(request)
        except SupersededError as exc:
            self.log.warning(
                "run.superseded", planned_from=exc.expected_run_id, found=exc.found_run_id
            )
            raise
        finally:
            batches.close()
            self.loader.close()
        self.report()  # the final figures, even when the last batches held no rows
        self.fault("load.after_commit")
        return loaded

    def result(
        self,
        loaded: LoadResult,
        stats: ExtractStats,
        start: RunStart,
        *,
        rows_rejected: int,
        started_at: str | None = None,
        **log_fields: Any,
    ) -> RunResult:
        """Return the committed run's `RunResult` and log `run.succeeded` (with `log_fields`).

        `started_at` (ISO 8601) counts the duration from an earlier instant (a parallel run's
        plan); by default the run started when this object was made.
        """
        assert self.committed is not None, "the loader commits the state `finalize` returns"
        finished = dt.datetime.now(dt.UTC)
        if started_at:
            duration = (finished - dt.datetime.fromisoformat(started_at)).total_seconds()
        else:
            duration = time.perf_counter() - self._clock
        warnings = [*stats.warnings, *loaded.warnings]  # loaded: values it changed (NULL arrays)
        ignored = self.job.destination.ignored_options_warning()
        if ignored:
            warnings.append(ignored)
        sources = {dest: source for source, dest in self._names().items()}
        result = RunResult(
            run_id=self.run_id,
            rows_extracted=self.rows_read + stats.rows_skipped,
            rows_loaded=loaded.rows_loaded,
            rows_skipped=stats.rows_skipped,
            rows_rejected=rows_rejected,
            bytes_extracted=self.bytes_read,
            files_loaded=stats.files,
            files_skipped=stats.files_skipped,
            warnings=warnings,
            destination_table=f"{self.job.destination.dataset}.{self.job.dest_table_name}",
            schema=[
                {
                    "name": c["name"],
                    "source_name": sources.get(c["name"], c["name"]),
                    "type": c["type"],
                }
                for c in loaded.schema
            ],
            state=self.committed,
            reconciled_run_id=start.reconciled_run_id,
            started_at=self.started.isoformat() if started_at is None else started_at,
            finished_at=finished.isoformat(),
            duration_s=round(duration, 3),
        )
        self.log.info(
            "run.succeeded",
            **log_fields,
            rows_extracted=result.rows_extracted,
            rows_loaded=result.rows_loaded,
            bytes=result.bytes_extracted,
            duration_s=result.duration_s,
        )
        return result

    def _on_batch(self, rows: int) -> None:
        self.rows_loaded += rows
        self.fault("load.batch")
        self.report()

    def _finalize(self, next_state: Callable[[], SyncState]) -> SyncState:
        self.committed = next_state().model_copy(
            update={"column_map": self._names(), "last_run_id": self.run_id}
        )
        self.fault("load.before_commit")
        return self.committed
