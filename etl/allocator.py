"""Arrow's memory pool and how soon it gives freed memory back to the system, set when this
module is imported (`etl/__init__.py` imports it first, before pyarrow): Arrow reads both from
the environment, its bundled jemalloc once when pyarrow's library is loaded. A leaf module:
imports nothing, so `etl/__init__.py` can run it first.

Arrow's jemalloc (the file readers' pool, etl/formats/memory.py) keeps freed pages for about a
second (`dirty_decay_ms:1000`, `muzzy_decay_ms:1000`, compiled into pyarrow), and
`MemoryPool.release_unused` does not purge them in pyarrow 26 (measured: RSS unchanged after the
call, then falling over ~0.8 s). The CSV typing pass ends with ~110 MB of such pages, which
were still resident while DuckDB started reading the spool: that overlap was the CSV route's
peak (TPC-H lineitem SF 1, bench/PROFILE.md "memory").
"""

from __future__ import annotations

import os

JEMALLOC_CONF_VARIABLE = "JE_ARROW_MALLOC_CONF"
"""The environment variable Arrow's bundled jemalloc (symbol prefix `je_arrow_`) reads its
options from, applied after the options compiled into pyarrow (jemalloc's `MALLOC_CONF` under
the prefix; `man jemalloc`, "TUNING")."""

JEMALLOC_CONF = "dirty_decay_ms:100,muzzy_decay_ms:0"
"""Freed pages go back to the system within ~0.1 s instead of ~1 s. TPC-H lineitem SF 1 CSV
into DuckDB, `/usr/bin/time` max RSS, two runs each on a quiet machine: 369-379 MB with Arrow's
options, 317-324 MB with `dirty_decay_ms:200`, 296-311 MB with 100 or 50, at the same CPU
(user 12.4-13.6 s, system 3.3-4.1 s)."""


POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
"""The environment variable naming Arrow's default memory pool, read when the pool is first
used (pyarrow's "Memory and IO Interfaces" page)."""

POOL = "jemalloc"
"""Arrow's default pool from the start: the wheel's default is mimalloc, which keeps what it
freed; the file readers switched to jemalloc only when they started
(etl/formats/memory.py `use_returning_pool`), so what Arrow allocated before stayed in a
mimalloc segment (~22 MB resident after a CSV typing pass). TPC-H lineitem SF 1 CSV into
DuckDB: 305-309 MB -> 280-283 MB (`/usr/bin/time`, two runs each), same CPU."""


def configure_arrow_memory() -> None:
    """Set JEMALLOC_CONF for Arrow's jemalloc and make jemalloc Arrow's default pool, each
    unless the environment already sets it (a user's setting wins). Effective only before
    pyarrow is first imported in the process; child processes inherit both."""
    os.environ.setdefault(JEMALLOC_CONF_VARIABLE, JEMALLOC_CONF)
    os.environ.setdefault(POOL_VARIABLE, POOL)


configure_arrow_memory()
