"""Creating and evolving the BigQuery loader's tables: table options (etl/load/bigquery/tables.py),
new columns and the widenings BigQuery allows, on the target and on the per-run staging table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from etl.bigquery_client import bigquery
from etl.exceptions import (
    SchemaChangeError,
)
from etl.load.base import (
    LoadRequest,
)
from etl.load.bigquery import tables
from etl.load.bigquery.jobs import BigQueryJobs
from etl.load.bigquery.sql import ddl_type, laid_out
from etl.load.bigquery.types import bigquery_widened, normalized
from etl.schema import first_source_file

STAGING_EXPIRATION = dt.timedelta(days=1)


class TablesMixin(BigQueryJobs):
    """Table creation and schema evolution of `BigQueryLoader`."""

    def _check_options(self, table: str, fields: list) -> None:
        """Fail before loading when a partition/clustering column is missing or mistyped, or
        the configured partitioning is not the existing table's (etl/load/bigquery/tables.py)."""
        tables.check_columns(self.destination, fields)
        tables.refuse_fixed_changes(self._table_or_none(self.table_id(table)), self.destination)

    def _sync_options(self, table: Any, request: LoadRequest, source_types: dict) -> Any:
        """Apply changed table options and column descriptions after the commit (swaps and
        schema evolution included); return the table."""
        sources = request.column_sources() if request.column_sources else {}
        descriptions = {
            name: tables.column_description(sources.get(name, name), kind)
            for name, kind in source_types.items()
            if not name.startswith("_etl_")
        }

        def update(table: Any, fields: list[str]) -> Any:
            return self._call("table options", self.client.update_table, table, fields)

        return tables.sync_options(table, self.destination, descriptions, update)

    def _create(
        self, table_id: str, fields: list, *, expires: bool = False, layout: bool = False
    ) -> None:
        """Create `table_id`; `layout`: with the configured partitioning and clustering (and,
        for the destination table itself, its description and labels)."""
        table = bigquery.Table(table_id, schema=fields)
        if layout:
            tables.apply_layout(table, self.destination, metadata=not expires)
        if expires:
            table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRATION
        self._call(f"creation of {table_id}", self.client.create_table, table)

    def _evolve_staging(self, staging, columns, fields, batch, parts, table):
        new = [f for f in fields if f.name not in columns]
        for field in fields:
            old = columns.get(field.name)
            if old is not None and (old.field_type, old.mode) != (field.field_type, field.mode):
                if batch.column(field.name).null_count != batch.num_rows:
                    raise SchemaChangeError(
                        table, field.name, old.field_type, field.field_type,
                        first_source_file(batch),
                    )  # fmt: skip
                batch = batch.drop_columns([field.name])  # all NULL: the aligned part fills it
        if new:
            parts.flush()
            self._add_columns(staging, new)
            columns.update({f.name: f for f in new})
        return batch

    def _add_columns(self, table_id: str, fields: list) -> None:
        table = self._call("table lookup", self.client.get_table, table_id)
        table.schema = [*table.schema, *fields]
        self._call(f"new columns of {table_id}", self.client.update_table, table, ["schema"])

    def _evolve_target(
        self, table: Any, columns: dict, name: str, staging: str, to_string: bool
    ) -> None:
        """Add the run's new columns to `table` and widen the columns whose type the run's
        values need (`bigquery_widened`): INT64 -> NUMERIC -> BIGNUMERIC with ALTER COLUMN SET
        DATA TYPE, in place; to STRING (only with `to_string`) by rewriting the table with the
        column cast, since ALTER COLUMN cannot change a type to STRING (then a partitioned or
        clustered table is refused rather than recreated without its layout). A STRING column
        receiving other values gets them as text: the staging table is rewritten with the cast.

        Raises:
            SchemaChangeError: a narrowing or incompatible change, naming the column and both
                types (terminal).
        """
        existing = {f.name: f for f in table.schema}
        target = f"`{table.full_table_id.replace(':', '.')}`"
        alters: list[str] = []
        target_casts: list[str] = []
        staging_casts: list[str] = []
        for field in columns.values():
            old = existing.get(field.name)
            if old is None:
                continue
            old_type, new_type = normalized(old.field_type), normalized(field.field_type)
            if (old_type, old.mode) == (new_type, field.mode):
                continue
            wider = None
            if old.mode == field.mode == "NULLABLE":
                wider = bigquery_widened(old_type, new_type, to_string=to_string)
            if wider is None or (wider == "STRING" and old_type != "STRING" and laid_out(table)):
                raise SchemaChangeError(name, field.name, old_type, new_type)
            if wider == "STRING" and old_type != "STRING":
                target_casts.append(field.name)
            elif wider != old_type:
                alters.append(f"ALTER COLUMN `{field.name}` SET DATA TYPE {wider}")
            if wider == "STRING" and new_type != "STRING":
                staging_casts.append(field.name)
        if alters:
            self._query(f"ALTER TABLE {target} {', '.join(alters)}", [], what=f"widening of {name}")
        for table_ref, casts in ((target, target_casts), (f"`{staging}`", staging_casts)):
            if casts:
                replace = ", ".join(f"CAST(`{c}` AS STRING) AS `{c}`" for c in casts)
                self._query(
                    f"CREATE OR REPLACE TABLE {table_ref} AS "
                    f"SELECT * REPLACE ({replace}) FROM {table_ref}",
                    [],
                    what=f"widening of {name} to STRING",
                )
        new = [f for f in columns.values() if f.name not in existing]
        if new:
            ddl = ", ".join(f"ADD COLUMN `{f.name}` {ddl_type(f)}" for f in new)
            self._query(
                f"ALTER TABLE {target} {ddl}",
                [],
                what=f"new columns of {name}",
            )
