"""Parallel runs: one table split into key ranges, read by many processes, committed once.

The engine half of DESIGN.md §7 (issue 14); docs/parallel.md says what it guarantees and how
it scales. Three steps, each usable in its own process or machine:

1. `chunk_plan(job, state, run_id=..., staging=...)` -> `ChunkCoordinator` (a context
   manager): fixes the window, the snapshot (PostgreSQL: exported, held until exit), the fence
   and `job.parallelism` key ranges; `coordinator.plan` is a JSON-round-trippable `ChunkPlan`.
2. `chunk_extract(job, plan, index)` -> `ChunkReport`: reads one range, stages Parquet parts.
3. `coordinator.commit(reports)` or `chunk_commit(job, state, plan, reports, run_id=...)`
   -> `RunResult`: loads every part and commits them with the state in one transaction.

`run_parallel(job, state, processes=N)` runs all three with N local processes
(`etl run --parallel N`).
"""

from etl.parallel.chunk import chunk_extract
from etl.parallel.commit import ChunkPlanError, chunk_commit
from etl.parallel.coordinator import ChunkCoordinator, chunk_plan
from etl.parallel.local import ChunkFailedError, ChunkUnavailableError, run_parallel
from etl.parallel.plan import Chunk, ChunkPlan, ChunkReport, PartFile

__all__ = [
    "Chunk",
    "ChunkCoordinator",
    "ChunkFailedError",
    "ChunkPlan",
    "ChunkPlanError",
    "ChunkReport",
    "ChunkUnavailableError",
    "PartFile",
    "chunk_commit",
    "chunk_extract",
    "chunk_plan",
    "run_parallel",
]
