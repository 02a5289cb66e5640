"""`PostgresExtractor`: a table or custom SQL read in a REPEATABLE READ snapshot, each column
as etl/extract/postgres/types.py decides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import InfiniteCursorError, SchemaMappingError
from etl.extract.arrow_values import python_value
from etl.extract.inflight import (
    NOT_VISIBLE,
    PG_CLOCK_ONLY_SQL,
    PG_INFLIGHT_COLUMNS,
    PG_INFLIGHT_SQL,
    STANDBY,
    InflightCap,
)
from etl.extract.postgres.connection import connect, literal
from etl.extract.postgres.errors import first_line, translate
from etl.extract.postgres.infinity import InfinityReader, sentinel_of
from etl.extract.postgres.types import (
    PG_TYPE,
    ColumnRead,
    NumericReader,
    arrow_field,
    declared_decimal,
    measured_decimal,
    multi_dimensional,
    pg_type,
    plan_column,
)
from etl.extract.sql import SqlExtractor
from etl.registry import register_extractor

BATCH_HINT_MAX_BYTES = 1 << 20
"""Upper bound of the driver's batch size, bytes (`adbc.postgresql.batch_size_hint_bytes`).
Measured on TPC-H lineitem SF 0.25 -> DuckDB: 12.8 MB batches peak at ~395 MB RSS, 4 MB at
~310 MB, 2 MB at ~270 MB, with the same CPU time; 1 MB since batches are decoded one ahead in a
thread of their own (etl/extract/prefetch.py), one more batch in flight."""


@register_extractor("postgresql")
class PostgresExtractor(SqlExtractor):
    """Extract a PostgreSQL table or custom SQL (`connection_params`: host, port, database,
    user, password, optional `sslmode`, `connect_timeout` seconds)."""

    quote_char = '"'

    def __init__(self, job: Any) -> None:
        super().__init__(job)
        self.numerics = NumericReader(job.source_table_name or "custom_sql", job.on_unrepresentable)
        self.infinities = InfinityReader(
            job.source_table_name or "custom_sql", job.on_unrepresentable
        )

    def connect(self) -> Any:
        return connect(self.job.connection_params)

    def begin_snapshot(self, connection: Any) -> None:
        connection.connection.set_autocommit(False)  # ADBC sends BEGIN
        connection.execute_update("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if self.snapshot_id is not None:  # a parallel run's chunk: the coordinator's instant
            connection.execute_update(f"SET TRANSACTION SNAPSHOT {literal(self.snapshot_id)}")
        connection.execute_update("SET TIME ZONE 'UTC'")

    def probe_inflight(self, connection: Any) -> InflightCap:
        """Read `pg_stat_activity` in autocommit mode, before the snapshot: the oldest
        `xact_start` of other sessions of this database (client backends and background
        workers, not autovacuum nor other ETL Runner runs, which only read), and the wall-clock
        cap in the session's default `TimeZone`. Sessions of other roles show `xact_start`
        only to superusers and members of `pg_read_all_stats`: when some are hidden, the
        run's warnings say so."""
        import adbc_driver_manager

        try:
            values = self.fetch_one(connection, PG_INFLIGHT_SQL)
        except adbc_driver_manager.ProgrammingError as exc:  # the view is not readable
            instant, wall = self.fetch_one(connection, PG_CLOCK_ONLY_SQL)
            reason = f"pg_stat_activity cannot be read: {first_line(exc)}"
            return InflightCap(
                instant=instant,
                wall=wall,
                warnings=[NOT_VISIBLE.format(count="all", reason=reason)],
            )
        row = dict(zip(PG_INFLIGHT_COLUMNS, values, strict=True))
        cap = InflightCap(
            instant=row["cap"],
            wall=row["cap_wall"],
            probed_at=row["probed_at"],
            oldest=row["oldest"],
            holder=row["holder"] or "",
        )
        if row["hidden"]:
            cap.warnings.append(
                NOT_VISIBLE.format(
                    count=row["hidden"],
                    reason="their role is not visible to this user: grant it pg_read_all_stats",
                )
            )
        if row["standby"]:
            cap.warnings.append(STANDBY)
        return cap

    def estimate_rows(self, connection: Any) -> int | None:
        """`pg_class.reltuples` of the table (PostgreSQL manual, "Statistics Used by the
        Planner"): -1 until the table is first vacuumed or analysed, then None here."""
        if self.job.custom_sql or not self.job.source_table_name:
            return None
        literal = "'" + self.relation().replace("'", "''") + "'"
        (value,) = self.fetch_one(
            connection,
            f"SELECT (SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass({literal}))",
        )
        return int(value) if value is not None and value >= 0 else None

    def fetch_one(self, connection: Any, sql: str) -> tuple[Any, ...]:
        statement, reader = connection.query(sql)
        try:
            table = reader.read_all()
        finally:
            connection.release(statement)
        values = []
        for field, column in zip(table.schema, table.columns, strict=True):
            if (infinite := sentinel_of(column.combine_chunks())) is not None:
                # a cursor bound (MIN/MAX of the cursor column): the only dates and timestamps
                # these one-row queries read
                raise InfiniteCursorError(
                    self.job.source_table_name or "custom_sql",
                    self.job.timestamp_column or field.name,
                    infinite,
                )
            value = python_value(column[0]) if column[0].is_valid else None
            if field.metadata and field.metadata.get(PG_TYPE) == b"numeric" and value is not None:
                value = Decimal(value if isinstance(value, str) else str(value))
            values.append(value)
        return tuple(values)

    def placeholder(self, index: int, value: Any) -> str:
        """Return the bound as a typed literal, not a `$n` parameter: the driver streams a
        result through binary COPY only for a query without parameters (with parameters it
        fetches the whole result into memory first). Values are the watermark's own (datetime,
        date, int, Decimal) or `initial_value`, quoted as a string literal."""
        return literal(value)

    def stream(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Stream `sql`, each column read as `etl.extract.postgres.types` decides: the types that
        depend on the data (unconstrained numeric, array dimensions) are measured first with
        one aggregate query over the same window, in the same snapshot."""
        # bounds are inlined as literals by `placeholder`: no parameters reach the driver
        statement, reader = connection.query(f"SELECT * FROM ({sql}) AS _etl_q LIMIT 0")
        try:
            raw = reader.read_all().schema
        finally:
            connection.release(statement)
        reads = [plan_column(field, self.quote(field.name)) for field in raw]
        measured = self._profile(connection, sql, reads)
        numeric_types: dict[str, pa.DataType] = {}
        for index, (field, read) in enumerate(zip(raw, reads, strict=True)):
            figures = measured.get(index)
            if read.kind == "numeric":
                declared = declared_decimal(field) if pg_type(field) == "numeric" else None
                numeric_types[field.name] = declared or measured_decimal(*(figures or (None, None)))
            elif read.kind == "array" and figures and (figures[0] or 0) > 1:
                reads[index] = multi_dimensional(self.quote(field.name))
        columns = [
            f"{read.expression} AS {self.quote(field.name)}"
            for field, read in zip(raw, reads, strict=True)
        ]
        # the driver sizes its batches in bytes: aim near `chunk_size` rows (~128 bytes a row
        # is typical of warehouse rows), at most BATCH_HINT_MAX_BYTES: each MB of a driver
        # batch costs ~10 MB of peak RSS downstream (casts, prefetch queue, DuckDB's scan)
        hint = min(max(self.job.chunk_size * 128, 1 << 16), BATCH_HINT_MAX_BYTES)
        statement, reader = connection.query(
            f"SELECT {', '.join(columns)} FROM ({sql}) AS _etl_q",
            {"adbc.postgresql.batch_size_hint_bytes": str(hint)},
        )
        schema = pa.schema(
            [
                arrow_field(declared.name, read, driver, numeric_types.get(declared.name))
                for declared, read, driver in zip(raw, reads, reader.schema, strict=True)
            ]
        )
        kinds = [read.kind for read in reads]

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    yield self._convert(batch, schema, kinds)
            finally:
                connection.release(statement)

        return schema, batches()

    def _profile(
        self, connection: Any, sql: str, reads: list[ColumnRead]
    ) -> dict[int, tuple[Any, ...]]:
        """Return, per column index that needs it, the figures its type is chosen from
        (integer digits and scale of a numeric, dimensions of an array), read from the window
        `sql` in the run's snapshot."""
        aggregates = [(index, item) for index, read in enumerate(reads) for item in read.profile]
        if not aggregates:
            return {}
        row = self.fetch_one(
            connection,
            f"SELECT {', '.join(item for _, item in aggregates)} FROM ({sql}) AS _etl_q",
        )
        figures: dict[int, tuple[Any, ...]] = {}
        for (index, _), value in zip(aggregates, row, strict=True):
            figures[index] = (*figures.get(index, ()), None if value is None else int(value))
        return figures

    def _convert(
        self, batch: pa.RecordBatch, schema: pa.Schema, kinds: list[str]
    ) -> pa.RecordBatch:
        arrays = []
        for target, array, kind in zip(schema, batch.columns, kinds, strict=True):
            if isinstance(array.type, pa.ExtensionType):
                array = array.storage
            if kind == "numeric":
                array = self.numerics.convert(array, target)
            elif kind == "native":
                array = self.infinities.convert(array, target.name)
            if kind != "numeric" and array.type != target.type:
                try:
                    array = pc.cast(array, target.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaMappingError(target.name, str(target.type), str(exc)) from exc
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def warnings(self) -> list[str]:
        return self.numerics.warnings() + self.infinities.warnings()

    def translate_error(self, exc: Exception) -> Exception | None:
        password = self.job.connection_params.get("password")
        return translate(exc, self.source_label, password)
