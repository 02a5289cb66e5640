"""Destination column names: valid for BigQuery, unique ignoring case, stable across runs.

Rules (https://cloud.google.com/bigquery/docs/schemas#column_names): letters, digits and
underscores; must not start with a digit; at most 300 characters; case-insensitive; some
prefixes are reserved. Names are also lower-cased snake_case, as most warehouses expect.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

MAX_LENGTH = 300
RESERVED_PREFIXES = (
    "_table_",
    "_file_",
    "_partition",
    "_row_timestamp",
    "__root__",
    "_colidentifier",
    "_change_sequence_number",
    "_change_type",
    "_change_timestamp",
)
"""BigQuery's reserved column-name prefixes (lower case; the check ignores case)."""
METADATA_PREFIX = "_etl_"
"""Prefix of the columns the engine adds (`_etl_run_id`, `_etl_loaded_at`, `_etl_source_file`)."""


def sanitize(name: str) -> str:
    """Return `name` as a valid, lower-case BigQuery column name (not yet made unique).

    `Order ID` -> `order_id`, `Größe` -> `grosse`, `2nd` -> `_2nd`, `_TABLE_x` -> `col_table_x`.
    """
    ascii_name = unicodedata.normalize("NFKD", name.replace("ß", "ss"))
    ascii_name = ascii_name.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not text:
        text = "column"
    if ascii_name.startswith("_"):
        text = "_" + text
    if text[0].isdigit():
        text = "_" + text
    if text.startswith(RESERVED_PREFIXES) or text.startswith(METADATA_PREFIX):
        text = "col_" + text.lstrip("_")
    return text[:MAX_LENGTH]


def assign_names(
    source_names: Iterable[str], existing: Mapping[str, str], *, reserved: Iterable[str] = ()
) -> dict[str, str]:
    """Return the source -> destination map extended with any new `source_names`.

    Existing entries never change. A new name that collides (ignoring case) with a destination
    name already taken gets `_2`, `_3`, ... appended.
    """
    mapping = dict(existing)
    taken = {value.lower() for value in mapping.values()} | {name.lower() for name in reserved}
    for source in source_names:
        if source in mapping:
            continue
        base = sanitize(source)
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            suffix = f"_{n}"
            candidate = base[: MAX_LENGTH - len(suffix)] + suffix
        mapping[source] = candidate
        taken.add(candidate.lower())
    return mapping
