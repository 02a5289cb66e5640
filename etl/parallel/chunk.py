"""One chunk of a parallel run: read its key range, transform, stage Parquet parts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from etl.config import JobConfig
from etl.exceptions import SnapshotExpiredError, SourceQueryError
from etl.extract.base import Extraction
from etl.extract.sql import ChunkRead, SqlExtraction, SqlExtractor, WindowBounds
from etl.load.base import job_labels
from etl.parallel.plan import ChunkPlan, ChunkReport, PartFile
from etl.registry import get_extractor
from etl.run_commit import key_nulls, null_key_error, primary_key
from etl.state import Watermark
from etl.transform import BatchTransformer

logger = structlog.get_logger(__name__)

PART_ROWS = 1_000_000
"""Rows per staged Parquet part; a part is also closed when the batch schema changes."""


def filesystem(url: str) -> tuple[Any, str]:
    """Return the fsspec filesystem and path of a staging location (a local directory or an
    fsspec URL such as `gs://bucket/prefix`; gcsfs is a requirement)."""
    import fsspec

    return fsspec.core.url_to_fs(url)


def remove_folder(url: str) -> None:
    """Remove a staging folder (`filesystem(url)`) and everything in it, if it exists."""
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


class PartStager:
    """Writes batches into Parquet files `part-00001.parquet`, ... of a chunk attempt."""

    def __init__(self, folder: str) -> None:
        self.fs, self.folder = filesystem(folder)
        self.url_prefix = folder.rstrip("/")
        self.fs.makedirs(self.folder, exist_ok=True)
        self.parts: list[PartFile] = []
        self._writer: pq.ParquetWriter | None = None
        self._handle: Any = None
        self._name = ""
        self._rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is not None and self._writer.schema != batch.schema:
            self.flush()
        if self._writer is None:
            self._name = f"part-{len(self.parts) + 1:05d}.parquet"
            self._handle = self.fs.open(f"{self.folder}/{self._name}", "wb")
            self._writer = pq.ParquetWriter(self._handle, batch.schema)
        self._writer.write_batch(batch)
        self._rows += batch.num_rows
        if self._rows >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        size = self._handle.tell()
        self._handle.close()
        self.parts.append(
            PartFile(path=f"{self.url_prefix}/{self._name}", rows=self._rows, bytes=size)
        )
        self._writer, self._handle, self._rows = None, None, 0


def chunk_extract(
    job: JobConfig,
    plan: ChunkPlan,
    index: int,
    *,
    fault_hook: Callable[[str], None] | None = None,
) -> ChunkReport:
    """Read chunk `index` of `plan`, transform it as `etl.run` does, and stage it as Parquet.

    The parts go to `<plan.staging>/<run_id>/chunk-<index>/attempt-<uuid>/part-NNNNN.parquet`.
    A retry (after a crash or a transient error) is a new attempt in a new folder; the commit
    loads only the parts named in the reports it is given, so a killed attempt's files are
    never loaded (they go when the coordinator removes the run's staging folder).
    PostgreSQL chunks read in the plan's exported snapshot (`SET TRANSACTION SNAPSHOT`), so the
    coordinator must still hold its transaction open (inside its `with` block); MySQL chunks
    each read in a snapshot of their own, bounded by the plan's upper bound
    (docs/parallel.md). A `single` plan's chunk runs the source's whole extraction.

    Args:
        job: the same job the plan was made for.
        plan: the run's plan (`ChunkCoordinator.plan`, or `ChunkPlan.from_dict`).
        index: which chunk, 0 .. len(plan.chunks) - 1.
        fault_hook: test-only phase callback (`etl.pipeline.FaultHook`), called with
            `chunk.batch` and `chunk<index>.batch` after each staged batch and `chunk.staged`
            / `chunk<index>.staged` after the last part is written.

    Returns:
        ChunkReport: rows (rows), bytes (bytes), part paths, warnings, the largest cursor value
        read, the boundary keys; JSON round-trip with `to_dict()` / `from_dict()`.

    Raises:
        SourceUnavailableError: source unreachable (transient: retry the chunk while the
            coordinator holds the snapshot).
        SnapshotExpiredError: the plan's PostgreSQL snapshot is gone (the coordinator's
            transaction ended); no chunk of this plan can be read: plan the run again.
        TerminalError: the source rejects the query, a type cannot be mapped, a `merge`
            primary key has NULLs (`PrimaryKeyError`).
    """
    attempt = _ChunkAttempt(job, plan, index, fault_hook)
    extraction = attempt.open()
    attempt.log.info("chunk.start", where=plan.chunks[index].where, split=plan.split)
    with extraction:
        attempt.stage(extraction)
        report = attempt.report(extraction)
    attempt.log.info(
        "chunk.staged", rows=report.rows, parts=len(report.parts), duration_s=report.duration_s
    )
    return report


class _ChunkAttempt:
    """One attempt at chunk `index` of `plan`: its folder, transform, staged parts, counters."""

    def __init__(
        self, job: JobConfig, plan: ChunkPlan, index: int, fault_hook: Callable[[str], None] | None
    ) -> None:
        self.clock = time.perf_counter()
        self.job, self.plan, self.index, self.fault_hook = job, plan, index, fault_hook
        self.attempt = uuid.uuid4().hex
        self.folder = f"{plan.run_folder}/chunk-{index}/attempt-{self.attempt}"
        self.log = logger.bind(run_id=plan.run_id, chunk=index, attempt=self.attempt)
        self.extractor = get_extractor(job.source_type)(job)
        self.extractor.job_labels = job_labels(plan.run_id, job.load_type, job.pipeline_id)
        # a full refresh's plan holds a first run's state
        self.transformer = BatchTransformer(job, plan.state.column_map)
        self.stager = PartStager(self.folder)
        self.rows = self.bytes_read = 0
        self.max_cursor: Any = None

    def fault(self, phase: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(f"chunk.{phase}")
            self.fault_hook(f"chunk{self.index}.{phase}")

    def open(self) -> Extraction:
        """Return the chunk's extraction: its key range of the plan's window, in the plan's
        snapshot (`sql`), or the source's whole extraction (`single`)."""
        plan, state = self.plan, self.plan.state
        if plan.mode != "sql":
            return self.extractor.extract(state)
        assert isinstance(self.extractor, SqlExtractor)
        window = None
        if self.job.load_type != "catalog":
            upper = plan.upper.as_python() if plan.upper else None
            window = WindowBounds(upper=upper, null_count=plan.null_count)
        read = ChunkRead(window=window, where=plan.chunks[self.index].where, snapshot=plan.snapshot)
        try:
            return self.extractor.extract(state, chunk=read)
        except SourceQueryError as exc:
            if plan.snapshot and "invalid snapshot identifier" in str(exc):
                raise SnapshotExpiredError(plan.run_id, plan.snapshot) from exc
            raise

    def stage(self, extraction: Extraction) -> None:
        """Transform the extraction's batches and stage them as Parquet parts."""
        job, transformer = self.job, self.transformer
        cursor = job.timestamp_column if job.load_type != "catalog" else None
        for batch in extraction.batches():
            self.bytes_read += batch.nbytes
            if cursor and cursor in batch.schema.names and batch.num_rows:
                top = pc.max(batch.column(cursor)).as_py()
                if top is not None and (self.max_cursor is None or top > self.max_cursor):
                    self.max_cursor = top
            batch = transformer.transform(batch, extraction.current_file)
            if job.load_type == "merge":
                key = primary_key(job, transformer.column_map)
                for name, nulls in key_nulls(batch, key, job.dest_table_name):
                    if nulls:
                        raise null_key_error(job.dest_table_name, key, name, nulls)
            self.stager.write(batch)
            self.rows += batch.num_rows
            self.fault("batch")
        self.stager.flush()
        self.fault("staged")

    def report(self, extraction: Extraction) -> ChunkReport:
        """Return the attempt's report, once `stage` is done (the extraction still open)."""
        plan, stats = self.plan, extraction.stats
        sql = plan.mode == "sql"
        window = getattr(extraction, "window", None) if sql else None
        return ChunkReport(
            run_id=plan.run_id,
            index=self.index,
            attempt=self.attempt,
            parts=tuple(self.stager.parts),
            rows=self.rows,
            rows_skipped=stats.rows_skipped,
            bytes_extracted=self.bytes_read,
            columns=tuple(extraction.schema.names) if isinstance(extraction, SqlExtraction) else (),
            column_map=dict(self.transformer.column_map),
            max_cursor=Watermark.from_python(self.max_cursor)
            if self.max_cursor is not None
            else None,
            boundary_keys=dict(window.next_boundary) if window is not None else {},
            null_keys=dict(window.next_null) if window is not None else {},
            read_again=tuple(sorted(window.read_again)) if window is not None else (),
            warnings=tuple(stats.warnings),
            next_state=None if sql else extraction.next_state(plan.state, plan.run_id),
            files_loaded=tuple(stats.files),
            files_skipped=stats.files_skipped,
            replaced_files=tuple(extraction.replaced_files),
            rejects=_stage_rejects(extraction, self.job, self.folder),
            rows_rejected=len(extraction.rejects.rows),
            duration_s=round(time.perf_counter() - self.clock, 3),
        )


def _stage_rejects(extraction: Any, job: JobConfig, folder: str) -> str | None:
    """Write a quarantine's rejected rows next to the parts; return the file's path."""
    if job.on_bad_rows != "quarantine" or not extraction.rejects.rows:
        return None
    fs, root = filesystem(folder)
    with fs.open(f"{root}/rejects.parquet", "wb") as handle:
        pq.write_table(extraction.rejects.table(), handle)
    return f"{folder.rstrip('/')}/rejects.parquet"
