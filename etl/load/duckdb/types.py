"""DuckDB column types: which type change a table can take without losing a value (schema evolution)."""

from __future__ import annotations

import re

_INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "BIGINT": 4, "HUGEINT": 5}


_UINT_RANK = {"UTINYINT": 1, "USMALLINT": 2, "UINTEGER": 3, "UBIGINT": 4, "UHUGEINT": 5}


_SIGNED = {rank: name for name, rank in _INT_RANK.items()}


_DIGITS = {
    "TINYINT": 3,
    "SMALLINT": 5,
    "INTEGER": 10,
    "BIGINT": 19,
    "HUGEINT": 39,
    "UTINYINT": 3,
    "USMALLINT": 5,
    "UINTEGER": 10,
    "UBIGINT": 20,
    "UHUGEINT": 39,
}
"""Decimal digits an integer type needs (its largest magnitude)."""


_EXACT_IN_FLOAT = {"TINYINT", "SMALLINT", "UTINYINT", "USMALLINT"}
"""Integers a FLOAT (24-bit significand) holds exactly."""


_EXACT_IN_DOUBLE = _EXACT_IN_FLOAT | {"INTEGER", "UINTEGER", "FLOAT"}
"""Types a DOUBLE (53-bit significand) holds exactly."""


_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


STRING = "VARCHAR"


def widened(existing: str, incoming: str, *, to_string: bool = False) -> str | None:
    """Return the type a column of `existing` type must have to hold `incoming` values too:
    `existing` when it already does, a wider type when that is a lossless widening, VARCHAR
    when no widening holds both and `to_string` (`allow_widen_to_string`), else None.

    Lossless widenings (shared/DESIGN.md §5 "Schema", issue 17 item 8): integer -> wider
    integer (signed when one side is unsigned); integer -> DECIMAL(p, s) when p - s covers its
    digits (else the DECIMAL both fit, up to 38 digits); FLOAT -> DOUBLE, and integers of at
    most 32 bits -> DOUBLE (16 bits -> FLOAT); DECIMAL(p, s) -> DECIMAL(p', s') with
    p' - s' >= p - s and s' >= s (the smallest such, at most 38 digits: DuckDB's DECIMAL limit,
    https://duckdb.org/docs/sql/data_types/numeric). Anything -> VARCHAR only with `to_string`.
    """
    if existing == incoming:
        return existing
    wider = _lossless(existing, incoming)
    if wider is not None:
        return wider
    if to_string and not existing.endswith("]") and not incoming.endswith("]"):
        return STRING  # lists stay lists: their text would not load back into an array
    return None


def _lossless(existing: str, incoming: str) -> str | None:
    for ranks in (_INT_RANK, _UINT_RANK):
        if existing in ranks and incoming in ranks:
            return existing if ranks[existing] >= ranks[incoming] else incoming
    if existing in _INT_RANK and incoming in _UINT_RANK:
        rank = max(_INT_RANK[existing], _UINT_RANK[incoming] + 1)
        return _SIGNED.get(rank)
    if existing in _UINT_RANK and incoming in _INT_RANK:
        rank = max(_UINT_RANK[existing] + 1, _INT_RANK[incoming])
        return _SIGNED.get(rank)
    for kind, exact in (("FLOAT", _EXACT_IN_FLOAT), ("DOUBLE", _EXACT_IN_DOUBLE)):
        if existing == kind and incoming in exact:
            return existing
        if incoming == kind and existing in exact:
            return incoming
    if existing == "FLOAT" and incoming in _EXACT_IN_DOUBLE | {"DOUBLE"}:
        return "DOUBLE"
    if incoming == "FLOAT" and existing in _EXACT_IN_DOUBLE:
        return "DOUBLE"
    old, new = _decimal(existing), _decimal(incoming)
    if old is None and new is None:
        return None
    if old is None or new is None:
        if (existing if old is None else incoming) not in _DIGITS:
            return None
    (p1, s1) = old or (_DIGITS[existing], 0)
    (p2, s2) = new or (_DIGITS[incoming], 0)
    scale = max(s1, s2)
    precision = max(p1 - s1, p2 - s2) + scale
    if precision > 38:
        return None
    if old is not None and (precision, scale) == old:
        return existing
    return f"DECIMAL({precision},{scale})"


def _decimal(data_type: str) -> tuple[int, int] | None:
    match = _DECIMAL.fullmatch(data_type)
    return (int(match.group(1)), int(match.group(2))) if match else None
