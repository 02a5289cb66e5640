"""Arrow's memory pool for the file readers: jemalloc, which gives freed memory back to the
system, instead of the wheel's default mimalloc, which keeps it.

Measured on TPC-H lineitem SF 1 into DuckDB (peak RSS of the process, bench/PROFILE.md): the
CSV typing pass holds ~30 MB in Arrow's pool but the process ~310 MB with mimalloc (freed
blocks stay with the threads of Arrow's reader that freed them; `release_unused` did not return
them), ~245 MB with jemalloc; the run's peak went from ~405 to ~323 MB (CSV) and from ~355 to
~329 MB (JSONL), at the same CPU time (jemalloc's default dirty-page decay: a decay of 0 cost
~3.5 s more of system time for nothing more). `import etl` already makes jemalloc the default
pool, with a shorter decay, when it comes before pyarrow (etl/allocator.py); this switch is for
a process that imported pyarrow first. A leaf module: imports nothing from `etl` but the
allocator's constants.
"""

from __future__ import annotations

import os

import pyarrow as pa

from etl.allocator import POOL_VARIABLE

_CHOSEN: list[bool] = []


def use_returning_pool() -> None:
    """Make jemalloc Arrow's default pool from now on (once per process; buffers already
    allocated stay with the pool that allocated them). Without jemalloc in this pyarrow build,
    or when the process was started with its own `ARROW_DEFAULT_MEMORY_POOL`, the default pool
    stays."""
    if _CHOSEN:
        return
    _CHOSEN.append(True)
    if pa.default_memory_pool().backend_name == "jemalloc":
        return
    if os.environ.get(POOL_VARIABLE, "jemalloc") != "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc
        pass


def release_unused() -> None:
    """Give the pool's free memory back to the system now (between the passes of a reader)."""
    pa.default_memory_pool().release_unused()
