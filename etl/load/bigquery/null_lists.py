"""NULL arrays into BigQuery: a REPEATED field holds no NULL, so a NULL list or map loads as
`[]`; every one is counted per column path in the run's warnings, or fails the run under
`on_unrepresentable: fail` (docs/config.md, "Unrepresentable values")."""

from __future__ import annotations

import pyarrow as pa

from etl.exceptions import UnrepresentableValueError

NULL_LIST_WARNING = (
    "column `{column}`: {count} NULL {arrays} loaded as [] (a BigQuery ARRAY cannot be NULL; "
    "on_unrepresentable: nearest)"
)
"""The run warning of a list (or map) column, or nested list field (`o.tags`), some of whose
values are NULL: a REPEATED field holds no NULL, a NULL array is read as `[]`
(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#array_nulls)."""


def count_null_lists(
    batch: pa.RecordBatch, counts: dict[str, int], table: str, on_unrepresentable: str
) -> None:
    """Add to `counts` (column path -> NULL arrays) the NULL lists and maps of `batch`, at any
    depth where their parent holds a value (`o.tags`, `items[].tags`): BigQuery loads each as
    `[]` (`on_unrepresentable: nearest`, NULL_LIST_WARNING).

    Raises:
        UnrepresentableValueError: such a value under `on_unrepresentable: fail` (names the
            table and the column path).
    """
    found: dict[str, int] = {}
    for field, column in zip(batch.schema, batch.columns, strict=True):
        _null_lists(column, field.name, found)
    if found and on_unrepresentable == "fail":
        path = next(iter(found))
        raise UnrepresentableValueError(table, path, "NULL", "BigQuery", nearest="as []")
    for path, count in found.items():
        counts[path] = counts.get(path, 0) + count


def _null_lists(array: pa.Array, path: str, counts: dict[str, int]) -> None:
    kind = array.type
    if pa.types.is_map(kind):
        if array.null_count:
            counts[path] = counts.get(path, 0) + array.null_count
        _null_lists(array.items, f"{path}[].value", counts)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if array.null_count:
            counts[path] = counts.get(path, 0) + array.null_count
        _null_lists(array.flatten(), f"{path}[]", counts)
    elif pa.types.is_struct(kind):
        if array.null_count:
            array = array.filter(array.is_valid())
        for index, child in enumerate(kind):
            _null_lists(array.field(index), f"{path}.{child.name}", counts)


def null_list_warnings(counts: dict[str, int]) -> list[str]:
    """Return one NULL_LIST_WARNING per column path of `counts`, in the order first seen."""
    return [
        NULL_LIST_WARNING.format(
            column=path, count=count, arrays="array" if count == 1 else "arrays"
        )
        for path, count in counts.items()
    ]
