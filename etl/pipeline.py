"""`run(job, state) -> RunResult`: extract -> transform -> load, with state committed last."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Callable, Generator

import pyarrow as pa
import structlog

from etl.config import JobConfig
from etl.extract.base import Extraction, Extractor
from etl.load.base import LoadResult
from etl.registry import get_extractor
from etl.run_commit import RunLoad, RunStart, key_nulls, null_key_error, primary_key
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
    commit = RunLoad(job, run_id or uuid.uuid4().hex, progress=progress, fault_hook=fault_hook)
    start = commit.start(state or SyncState(), full_refresh=full_refresh)
    with _extractor(job, commit, start).extract(start.state) as extraction:
        loaded = _load(job, extraction, start, commit, on_estimate)
    return commit.result(
        loaded, extraction.stats, start, rows_rejected=len(extraction.rejects.rows)
    )


def _extractor(job: JobConfig, commit: RunLoad, start: RunStart) -> Extractor:
    """Return the job's extractor, labelled as the run's loader, and log `run.start`."""
    extractor = get_extractor(job.source_type)(job)
    extractor.job_labels = commit.loader.job_labels
    extractor.native_scans = commit.loader.native_scans
    watermark = start.state.watermark and start.state.watermark.value
    commit.log.info("run.start", load_type=job.load_type, watermark=watermark)
    return extractor


def _load(
    job: JobConfig,
    extraction: Extraction,
    start: RunStart,
    commit: RunLoad,
    on_estimate: Callable[[int], None] | None,
) -> LoadResult:
    """Load what `extraction` reads, transformed, and commit it with the state it leads to."""
    if on_estimate is not None and extraction.estimated_rows:
        on_estimate(extraction.estimated_rows)
    transformer = BatchTransformer(job, start.state.column_map)
    return commit.load(
        _batches(job, extraction, transformer, commit),
        start,
        names=lambda: transformer.column_map,
        next_state=lambda: extraction.next_state(start.state, commit.run_id),
        replace_files=extraction.replaced_files,
        rejected_rows=extraction.rejects.table if job.on_bad_rows == "quarantine" else None,
        source_line=extraction.source_line,
    )


def _batches(
    job: JobConfig, extraction: Extraction, transformer: BatchTransformer, commit: RunLoad
) -> Generator[pa.RecordBatch, None, None]:
    """Yield the extraction's batches transformed, counted into `commit` (rows, bytes read)
    and, for `merge`, checked for NULL keys: raised after the last batch, into the loader,
    which then commits nothing.

    Closing it (the load stopped early: a failed run) closes the extraction's stream, so the
    files it holds open are closed then, not when a kept traceback is collected at
    interpreter exit.
    """
    source = extraction.batches()
    null_keys: dict[str, int] = {}
    try:
        for batch in source:
            commit.rows_read += batch.num_rows
            commit.bytes_read += batch.nbytes
            commit.fault("extract.batch")
            batch = transformer.transform(batch, extraction.current_file)
            if job.load_type == "merge":
                key = primary_key(job, transformer.column_map)
                for name, nulls in key_nulls(batch, key, job.dest_table_name):
                    if nulls:
                        null_keys[name] = null_keys.get(name, 0) + nulls
            yield batch
        if null_keys:
            column, count = next(iter(null_keys.items()))
            key = primary_key(job, transformer.column_map)
            raise null_key_error(job.dest_table_name, key, column, count)
    finally:
        if isinstance(source, Generator):
            source.close()
