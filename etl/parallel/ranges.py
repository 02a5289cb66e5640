"""Key ranges of similar size, planned from the source database's own statistics.

Never a full scan to plan (issue 14): the split points come from

- PostgreSQL `pg_stats.histogram_bounds` of the column (equi-depth: each bucket holds about the
  same number of rows; PostgreSQL manual, "Statistics Used by the Planner"), kept only when
  they fall inside the window;
- else MIN/MAX of a column that leads an index (two index look-ups) or the window's own
  lower/upper bounds, cut into even steps;
- for PostgreSQL heap pages: `pg_relation_size` / block size, cut into even page ranges
  (PostgreSQL 14+ reads a `ctid` range with a TID Range Scan, touching only its pages);
- else one chunk.

What is split, in order of preference: the cursor for an incremental run that has a lower bound
(the ranges then split the run's window, not the whole table); for a whole-table read of a
PostgreSQL 14+ table, its heap pages (`ctid` ranges: each chunk reads only its pages, while a
key range holding a quarter of the table is planned as a sequential scan of the whole heap with
a filter, so every chunk would read every page); the first primary-key column; the cursor. Only
integer, numeric, date and timestamp columns qualify. Every range is a predicate on
the column (`>= low AND < high`, the first one open below and also taking NULLs, the last one
open above), so the ranges cover every row exactly once whatever the statistics say: stale
statistics only make the chunks uneven.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from etl.extract.sql import SqlExtractor

PG_ORDERABLE = {"int2", "int4", "int8", "numeric", "date", "timestamp", "timestamptz"}
"""PostgreSQL types (`pg_type.typname`) a range split can use."""
MYSQL_ORDERABLE = {
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "bigint",
    "decimal",
    "date",
    "datetime",
    "timestamp",
}
"""MySQL/MariaDB `information_schema.COLUMNS.DATA_TYPE` values a range split can use."""


def _text(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class RangePlanner:
    """Plans the key ranges of one table read, in the coordinator's snapshot.

    Args:
        extractor: the job's SQL extractor (dialect: quoting, literals, `fetch_one`).
        connection: its open connection, inside the run's snapshot transaction.
    """

    def __init__(self, extractor: SqlExtractor, connection: Any) -> None:
        self.extractor = extractor
        self.connection = connection
        self.job = extractor.job
        self.postgres = self.job.source_type == "postgresql"

    def plan(self, count: int, lower: Any, upper: Any) -> tuple[str, list[str | None], list[Any]]:
        """Return (split, predicates, cuts): `count` predicates at most (fewer when the
        statistics hold fewer distinct split points), covering every row once.

        Args:
            count: chunks wanted (`JobConfig.parallelism`).
            lower: the window's lower bound (Python value) or None (first run, catalog).
            upper: the window's upper bound or None.
        """
        if count <= 1:
            return "none", [None], []
        job = self.job
        table = job.source_table_name if not job.custom_sql else None
        cursor = job.timestamp_column if job.load_type != "catalog" else None
        if cursor and lower is not None and upper is not None and self._orderable(cursor, table):
            points = self._histogram(cursor, table) if table else []
            inside = [p for p in points if lower < p <= upper]
            if len(inside) >= count - 1:
                return self._ranges(f"histogram:{cursor}", cursor, _quantiles(inside, count))
            return self._ranges(f"window:{cursor}", cursor, _even(lower, upper, count))
        if table and self.postgres and self._tid_range_scans():
            # a whole-table read: page ranges read disjoint pages (TID Range Scan), where a key
            # range covering a large share of the table is a sequential scan of the whole heap
            # with a filter (EXPLAIN), i.e. every chunk would read every page
            planned = self._ctid_ranges(table, count)
            if planned[0] != "none":
                return planned
        candidates = []
        if table:
            key = self._primary_key_column(table)
            if key:
                candidates.append(key)
        if cursor and cursor not in candidates:
            candidates.append(cursor)
        for column in candidates:
            if not table or not self._orderable(column, table):
                continue
            points = self._histogram(column, table)
            if len(set(points)) >= count:
                return self._ranges(f"histogram:{column}", column, _quantiles(points, count))
            if self._indexed(column, table):
                low, high = self.extractor.fetch_one(
                    self.connection,
                    f"SELECT MIN({self.extractor.quote(column)}), "
                    f"MAX({self.extractor.quote(column)}) FROM {self.extractor.relation()}",
                )
                if low is not None and high is not None and low < high:
                    return self._ranges(f"minmax:{column}", column, _even(low, high, count))
        if table and self.postgres:
            return self._ctid_ranges(table, count)
        return "none", [None], []

    def _ranges(
        self, split: str, column: str, cuts: Sequence[Any]
    ) -> tuple[str, list[str | None], list[Any]]:
        name = self.extractor.quote(column)
        literals = [self.extractor.placeholder(1, value) for value in cuts]
        if not literals:
            return "none", [None], []
        predicates: list[str | None] = [f"({name} < {literals[0]} OR {name} IS NULL)"]
        for low, high in zip(literals, literals[1:], strict=False):
            predicates.append(f"{name} >= {low} AND {name} < {high}")
        predicates.append(f"{name} >= {literals[-1]}")
        return split, predicates, list(cuts)

    def _ctid_ranges(self, table: str, count: int) -> tuple[str, list[str | None], list[Any]]:
        (pages,) = self.extractor.fetch_one(
            self.connection,
            f"SELECT (pg_relation_size(to_regclass({_text(self.extractor.relation())})) / "
            "current_setting('block_size')::int)::bigint",
        )
        cuts = sorted({int(pages or 0) * i // count for i in range(1, count)} - {0})
        if not cuts:
            return "none", [None], []
        tids = [f"'({page},0)'::tid" for page in cuts]
        predicates: list[str | None] = [f"ctid < {tids[0]}"]
        for low, high in zip(tids, tids[1:], strict=False):
            predicates.append(f"ctid >= {low} AND ctid < {high}")
        predicates.append(f"ctid >= {tids[-1]}")
        return "ctid", predicates, cuts

    def _tid_range_scans(self) -> bool:
        """Whether the server reads a `ctid` range with a TID Range Scan (PostgreSQL 14+)."""
        return bool(self._one("SELECT current_setting('server_version_num')::int >= 140000"))

    def _one(self, sql: str) -> Any:
        (value,) = self.extractor.fetch_one(self.connection, sql)
        return value

    def _mysql_names(self, table: str) -> tuple[str, str]:
        *schema, name = table.split(".")
        return (_text(schema[0]) if schema else "DATABASE()"), _text(name)

    def _column_type(self, column: str, table: str) -> str | None:
        if self.postgres:
            return self._one(
                "SELECT (SELECT t.typname::text FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                f"WHERE a.attrelid = to_regclass({_text(self.extractor.relation())}) "
                f"AND a.attname = {_text(column)} AND NOT a.attisdropped)"
            )
        schema, name = self._mysql_names(table)
        return self._one(
            "SELECT (SELECT DATA_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} "
            f"AND COLUMN_NAME = {_text(column)})"
        )

    def _orderable(self, column: str, table: str | None) -> bool:
        if table is None:
            return True  # custom SQL: the window's own bounds, no catalog needed
        kind = self._column_type(column, table)
        return (kind or "").lower() in (PG_ORDERABLE if self.postgres else MYSQL_ORDERABLE)

    def _primary_key_column(self, table: str) -> str | None:
        if self.postgres:
            return self._one(
                "SELECT (SELECT a.attname::text FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                f"WHERE i.indrelid = to_regclass({_text(self.extractor.relation())}) "
                "AND i.indisprimary)"
            )
        schema, name = self._mysql_names(table)
        return self._one(
            "SELECT (SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            f"WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} "
            "AND CONSTRAINT_NAME = 'PRIMARY' AND ORDINAL_POSITION = 1)"
        )

    def _indexed(self, column: str, table: str) -> bool:
        """Whether `column` leads an index (MIN/MAX are then two index look-ups)."""
        if self.postgres:
            return bool(
                self._one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                    f"WHERE i.indrelid = to_regclass({_text(self.extractor.relation())}) "
                    f"AND a.attname = {_text(column)})"
                )
            )
        schema, name = self._mysql_names(table)
        return bool(
            self._one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.STATISTICS "
                f"WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {name} "
                f"AND COLUMN_NAME = {_text(column)} AND SEQ_IN_INDEX = 1)"
            )
        )

    def _histogram(self, column: str, table: str) -> list[Any]:
        """Return the column's `pg_stats.histogram_bounds` as Python values (PostgreSQL; []
        when the table was never analysed, the column has no histogram, or on MySQL)."""
        if not self.postgres:
            return []
        kind = self._column_type(column, table)
        if kind not in PG_ORDERABLE:
            return []
        value = self._one(
            f"SELECT (SELECT (s.histogram_bounds::text)::{kind}[] FROM pg_stats s "
            "JOIN pg_class c ON c.relname = s.tablename "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname "
            f"WHERE c.oid = to_regclass({_text(self.extractor.relation())}) "
            f"AND s.attname = {_text(column)} ORDER BY s.inherited LIMIT 1)"
        )
        if not value:
            return []
        if kind == "numeric":
            return sorted(Decimal(str(v)) for v in value if v is not None)
        return sorted(v for v in value if v is not None)


def _quantiles(points: Sequence[Any], count: int) -> list[Any]:
    """Return up to `count - 1` increasing cut points splitting equi-depth `points` evenly."""
    ordered = sorted(set(points))
    cuts: list[Any] = []
    for i in range(1, count):
        value = ordered[min(len(ordered) - 1, round(i * len(ordered) / count))]
        if not cuts or value > cuts[-1]:
            cuts.append(value)
    return cuts


def _even(low: Any, high: Any, count: int) -> list[Any]:
    """Return up to `count - 1` increasing cut points in (low, high] in even steps (integers,
    decimals, dates, datetimes)."""
    cuts: list[Any] = []
    for i in range(1, count):
        if isinstance(low, dt.datetime):
            value: Any = low + (high - low) * i / count
        elif isinstance(low, dt.date):
            value = low + dt.timedelta(days=(high - low).days * i // count)
        elif isinstance(low, int):
            value = low + (high - low) * i // count
        elif isinstance(low, Decimal):
            value = low + (high - low) * i / count
        else:
            return []
        if low < value <= high and (not cuts or value > cuts[-1]):
            cuts.append(value)
    return cuts
