"""Each key's latest row in the BigQuery loader: the `MERGE` a merge's commit runs, and a
merge's full refresh reduced to one row per key before its swap.

The latest row of a key is the one with the greatest `MergeKey.order_by` values (NULL lowest);
two staged rows with the same key and the same `order_by` values fail the load
(`PrimaryKeyError`), since neither is the latest.
"""

from __future__ import annotations

from etl.exceptions import PrimaryKeyError
from etl.load.base import MergeKey, duplicate_reason
from etl.load.bigquery.jobs import BigQueryJobs


class MergeMixin(BigQueryJobs):
    """The merge statements of `BigQueryLoader`."""

    def _merge_statement(
        self, table: str, staging: str, columns: dict, target_columns: list, key: MergeKey
    ) -> str:
        """Check the staged rows of a merge and return the `MERGE` of each key's latest row
        into `table`, run inside the commit's transaction.

        The latest row of a key is the one with the greatest `key.order_by` values (NULL
        lowest); it replaces the table's row with that key whatever the table row's cursor
        (the source's current row wins, also when its cursor moved back), or is inserted. A
        table column the staging lacks is set NULL in a replaced row, as in an appended one.
        Only the staging table is read here; the MERGE itself runs in the commit.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        self._check_keys(table, staging, key)
        names = ", ".join(f"`{name}`" for name in columns)
        partition = ", ".join(f"`{name}`" for name in key.primary_key)
        order = ", ".join(f"`{name}` DESC" for name in key.order_by)  # NULLs sort last in DESC
        latest = (
            f"SELECT {names} FROM (SELECT {names}, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY {order}) AS _etl_version FROM `{staging}`) WHERE _etl_version = 1"
        )
        match = " AND ".join(f"T.`{name}` = S.`{name}`" for name in key.primary_key)
        updates = [f"`{name}` = S.`{name}`" for name in columns if name not in key.primary_key]
        updates += [f"`{f.name}` = NULL" for f in target_columns if f.name not in columns]
        values = ", ".join(f"S.`{name}`" for name in columns)
        return (
            f"MERGE `{self.table_id(table)}` T USING ({latest}) S ON {match} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(updates)} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values});"
        )

    def _check_keys(self, table: str, staging: str, key: MergeKey) -> None:
        """Raise `PrimaryKeyError` when two staged rows share the key and `order_by` values."""
        both = ", ".join(f"`{name}`" for name in [*key.primary_key, *key.order_by])
        rows = list(
            self._query(
                f"SELECT {both}, COUNT(*) AS n FROM `{staging}` GROUP BY {both} "
                "HAVING COUNT(*) > 1 LIMIT 1",
                [],
                what=f"the primary key check of {table}",
            )
        )
        if rows:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, rows[0].values()))

    def _keep_latest(self, table: str, staging: str, key: MergeKey) -> None:
        """Delete from `staging` every row but each key's latest (`_merge_statement`'s rule:
        greatest `order_by` values, NULL lowest), before a merge's full refresh swaps it in.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        self._check_keys(table, staging, key)
        match = " AND ".join(f"T.`{n}` = S.`{n}`" for n in key.primary_key)
        newer: list[str] = []
        tied: list[str] = []
        for name in key.order_by:  # lexicographic: an earlier column decides first
            t, o = f"T.`{name}`", f"S.`{name}`"
            greater = f"({t} > {o} OR ({o} IS NULL AND {t} IS NOT NULL))"
            newer.append(" AND ".join([*tied, greater]))
            tied.append(f"({t} = {o} OR ({t} IS NULL AND {o} IS NULL))")
        self._query(
            f"DELETE FROM `{staging}` S WHERE EXISTS (SELECT 1 FROM `{staging}` T "
            f"WHERE {match} AND ({' OR '.join(newer)}))",
            [],
            what=f"the latest row per key of {table}",
        )
