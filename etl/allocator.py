"""How soon Arrow's jemalloc gives freed memory back to the system (`shorten_jemalloc_decay`,
run when this module is imported: `etl/__init__.py` imports it first, before pyarrow): Arrow's bundled jemalloc reads its options once,
when pyarrow's library is loaded. A leaf module: imports nothing, so `etl/__init__.py` can run
it first.

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


def shorten_jemalloc_decay() -> None:
    """Set JEMALLOC_CONF for Arrow's jemalloc unless the environment already has its own
    `JE_ARROW_MALLOC_CONF` (a user's setting wins). Effective only before pyarrow is first
    imported in the process; child processes inherit it."""
    os.environ.setdefault(JEMALLOC_CONF_VARIABLE, JEMALLOC_CONF)


shorten_jemalloc_decay()
