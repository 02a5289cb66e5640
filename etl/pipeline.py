"""`run(job, state) -> RunResult`: extract -> transform -> load, with state committed last."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator

import pyarrow as pa
import structlog

from etl.config import JobConfig
from etl.exceptions import PrimaryKeyError, SupersededError
from etl.load.base import Fence, LoadRequest, MergeKey, job_labels
from etl.registry import get_extractor, get_loader
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import RunResult, SyncState
from etl.transform import BatchTransformer

logger = structlog.get_logger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (rows loaded so far, bytes extracted so far) after each batch."""

FaultHook = Callable[[str], None]
"""Test-only: called with the name of each phase a run passes, so fault-injection tests can kill
the process at a chosen point. Phases: `run.planned` (the load log was read and the run planned
from it; nothing extracted, no destination connection held), `extract.batch` (a batch was read,
not yet handed to the loader), `load.batch` (the loader reports rows written, uncommitted),
`load.before_commit` (all rows written, the destination commit not yet run), `catalog.swap`
(BigQuery snapshot: the table was swapped in, the load log not yet written), `load.after_commit`
(the destination committed, the caller has not stored the new state yet)."""


def fault_hook_from_spec(spec: str) -> FaultHook | None:
    """Return the test-only hook `<phase>[:N[:stop]]` describes, or None for an empty spec: it
    SIGKILLs this process (with `:stop`, SIGSTOPs it, so a test can act and SIGCONT it) the Nth
    time (default 1st) the run reaches `<phase>`. Read from `ETL_FAULT_INJECT` by
    `python -m etl` and, in the test settings only, by the control plane's run executor."""
    spec = spec.strip()
    if not spec:
        return None
    phase, _, rest = spec.partition(":")
    nth, _, action = rest.partition(":")
    target = int(nth or 1)
    fault_signal = signal.SIGSTOP if action == "stop" else signal.SIGKILL
    seen = 0

    def hook(reached: str) -> None:
        nonlocal seen
        if reached != phase:
            return
        seen += 1
        if seen == target:
            sys.stdout.flush()
            os.kill(os.getpid(), fault_signal)

    return hook


def run(
    job: JobConfig,
    state: SyncState | None = None,
    *,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    fault_hook: FaultHook | None = None,
    full_refresh: bool = False,
    on_estimate: Callable[[int], None] | None = None,
) -> RunResult:
    """Run one job: read what is new since `state`, load it, return the state to keep.

    Before reading, the destination's load log is consulted: when it holds a commit by a run
    that `state` does not know about (the process died between the load and the state write),
    that run's state is adopted ("rolled forward") so nothing is loaded twice. The commit is
    fenced on that entry: if another run commits into the table before this one does (this run
    stalled and was presumed dead), this run's commit is refused (`SupersededError`). A table
    whose load log belongs to another pipeline (`job.owner_id`) is refused before anything is
    read (`TableOwnedError`).

    Args:
        job: the validated job config.
        state: the state after the last successful run; None or empty for a first run.
        run_id: id stamped on every loaded row (`_etl_run_id`); a new UUID4 hex when None.
        progress: optional callback `(rows_loaded, bytes_extracted)` as batches load, and once
            more with the final figures after the commit when they changed since.
        fault_hook: test-only callback named with each phase reached (`FaultHook`); None in
            production.
        full_refresh: ignore `state` and the load log's state (keeping only the column-name
            map, so destination names stay stable; no committed state is adopted), read
            everything, and replace the table with that snapshot atomically, whatever the load
            type; the state committed with it is a first run's. A crash after its commit leaves
            the refresh pending, and repeating it gives the same table. What "reset" does in
            the control plane and `etl run --full-refresh`.
        on_estimate: optional callback given the rows the read is expected to yield (an
            estimate from the source's catalog statistics), once, when one is known; for a
            progress display's % and ETA.

    Returns:
        RunResult with counts (rows), sizes (bytes), duration (seconds) and the new state.
        The destination already holds the rows and the new state when it returns.

    Raises:
        TransientError: source or destination unreachable; nothing was committed.
        SupersededError: another run committed into the table after this run planned; nothing
            of this run was committed (terminal: never retry it, the next run goes on).
        TableOwnedError: another pipeline owns the destination table; nothing was written.
        TerminalError: bad config, schema change, bad input, a `merge` primary key with
            NULLs or duplicates (`PrimaryKeyError`); nothing was committed.
    """
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    run_id = run_id or uuid.uuid4().hex
    state = state or SyncState()
    log = logger.bind(run_id=run_id, source_type=job.source_type, table=job.dest_table_name)

    def fault(phase: str) -> None:
        if fault_hook is not None:
            fault_hook(phase)

    pipeline_id = job.owner_id
    labels = job_labels(run_id, job.load_type, job.pipeline_id)  # set by the control plane
    loader = get_loader(job.destination.type)(job.destination)
    loader.job_labels = labels
    reconciled = None
    last = loader.last_committed(job.dest_table_name, pipeline_id)
    # a full refresh replaces the table from scratch: no committed state is adopted
    if last is not None and last.run_id != state.last_run_id and not full_refresh:
        log.warning("run.reconcile", committed_run_id=last.run_id, state_run_id=state.last_run_id)
        state, reconciled = last.state, last.run_id
    write_disposition = job.write_disposition
    if full_refresh:
        log.info("run.full_refresh", load_type=job.load_type)
        state = SyncState(column_map=state.column_map)
        write_disposition = "replace"
    fence = Fence(expected_run_id=last.run_id if last else None, pipeline_id=pipeline_id)
    fault("run.planned")

    extractor = get_extractor(job.source_type)(job)
    extractor.job_labels = labels
    extractor.native_scans = loader.native_scans
    transformer = BatchTransformer(job, state.column_map)
    counters = {"rows_extracted": 0, "bytes": 0, "rows_loaded": 0}
    committed: list[SyncState] = []
    log.info(
        "run.start", load_type=job.load_type, watermark=state.watermark and state.watermark.value
    )

    with extractor.extract(state) as extraction:
        if on_estimate is not None and extraction.estimated_rows:
            on_estimate(extraction.estimated_rows)
        null_keys: dict[str, int] = {}

        def batches() -> Generator[pa.RecordBatch, None, None]:
            # closed when the load stops early (a failed run): the files it holds open are
            # closed then, not when a kept traceback is collected at interpreter exit
            source = extraction.batches()
            try:
                yield from _counted(source)
            finally:
                if isinstance(source, Generator):
                    source.close()

        def _counted(source: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in source:
                counters["rows_extracted"] += batch.num_rows
                counters["bytes"] += batch.nbytes
                fault("extract.batch")
                batch = transformer.transform(batch, extraction.current_file)
                if job.load_type == "merge":
                    _count_null_keys(batch, merge_key().primary_key, null_keys, job.dest_table_name)
                yield batch
            if null_keys:  # raised into the loader, which then commits nothing
                column, count = next(iter(null_keys.items()))
                raise PrimaryKeyError(
                    job.dest_table_name,
                    merge_key().primary_key,
                    f"column `{column}` is NULL in {count} row(s) of this run",
                )

        def merge_key() -> MergeKey:
            names = transformer.column_map
            if job.is_file_source:
                order_by = [SOURCE_FILE_COLUMN]
            else:
                assert job.timestamp_column is not None
                order_by = [names.get(job.timestamp_column, job.timestamp_column)]
            return MergeKey(
                primary_key=[names.get(c, c) for c in job.primary_key], order_by=order_by
            )

        reported = [(0, 0)]

        def on_batch(rows: int) -> None:
            counters["rows_loaded"] += rows
            fault("load.batch")
            report()

        def report() -> None:
            figures = (counters["rows_loaded"], counters["bytes"])
            if progress and figures != reported[0]:
                reported[0] = figures
                progress(*figures)

        def finalize() -> SyncState:
            new_state = extraction.next_state(state, run_id).model_copy(
                update={"column_map": transformer.column_map, "last_run_id": run_id}
            )
            committed.append(new_state)
            fault("load.before_commit")
            return new_state

        stream = batches()
        request = LoadRequest(
            table=job.dest_table_name,
            batches=stream,
            write_disposition=write_disposition,
            run_id=run_id,
            finalize=finalize,
            replace_files=extraction.replaced_files,
            on_batch=on_batch,
            fault_hook=fault,
            fence=fence,
            rejected_rows=extraction.rejects.table if job.on_bad_rows == "quarantine" else None,
            allow_widen_to_string=job.allow_widen_to_string,
            merge_key=merge_key if job.load_type == "merge" else None,
            column_sources=lambda: {d: s for s, d in transformer.column_map.items()},
            source_line=extraction.source_line,
            on_unrepresentable=job.on_unrepresentable,
        )
        try:
            loaded = loader.load(request)
        except SupersededError as exc:
            log.warning("run.superseded", planned_from=exc.expected_run_id, found=exc.found_run_id)
            raise
        finally:
            stream.close()
        report()  # the final figures, even when the last batches held no rows
        fault("load.after_commit")
        stats = extraction.stats
        stats.warnings.extend(loaded.warnings)  # values the destination changed (NULL arrays)
        ignored = job.destination.ignored_options_warning()
        if ignored:
            stats.warnings.append(ignored)

    finished = dt.datetime.now(dt.UTC)
    source_names = {dest: source for source, dest in transformer.column_map.items()}
    result = RunResult(
        run_id=run_id,
        rows_extracted=counters["rows_extracted"] + stats.rows_skipped,
        rows_loaded=loaded.rows_loaded,
        rows_skipped=stats.rows_skipped,
        rows_rejected=len(extraction.rejects.rows),
        bytes_extracted=counters["bytes"],
        files_loaded=stats.files,
        files_skipped=stats.files_skipped,
        warnings=stats.warnings,
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
        reconciled_run_id=reconciled,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        duration_s=round(time.perf_counter() - clock, 3),
    )
    log.info(
        "run.succeeded",
        rows_extracted=result.rows_extracted,
        rows_loaded=result.rows_loaded,
        bytes=result.bytes_extracted,
        duration_s=result.duration_s,
    )
    return result


def _count_null_keys(
    batch: pa.RecordBatch, key: list[str], counts: dict[str, int], table: str
) -> None:
    """Add the NULLs of each primary-key column of `batch` into `counts` (column -> rows).

    Raises:
        PrimaryKeyError: a key column is missing from the batch.
    """
    for name in key:
        if name not in batch.schema.names:
            raise PrimaryKeyError(
                table,
                key,
                f"column `{name}` is not among the loaded columns; add it to selected_columns",
            )
        nulls = batch.column(name).null_count
        if nulls:
            counts[name] = counts.get(name, 0) + nulls
