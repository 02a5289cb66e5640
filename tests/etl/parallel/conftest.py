"""TPC-H lineitem in PostgreSQL and MariaDB for the parallel-run tests (SF 0.01: 60,175 rows,
generated once per module by tpchgen-cli; the slow twins generate SF 1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.etl.parallel.tpch import mysql_lineitem, pg_lineitem

SMALL = 0.01
"""TPC-H scale of `make test` (60,175 lineitem rows)."""


@pytest.fixture(scope="module")
def pg_lineitem_small() -> Iterator[str]:
    """`schema.lineitem` at SF 0.01 in a unique PostgreSQL schema (read-only for tests)."""
    with pg_lineitem(SMALL) as table:
        yield table


@pytest.fixture(scope="module")
def mysql_lineitem_small() -> Iterator[str]:
    """`database.lineitem` at SF 0.01 in a unique MariaDB database (read-only for tests)."""
    with mysql_lineitem(SMALL) as table:
        yield table
