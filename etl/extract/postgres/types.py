"""How each PostgreSQL column is read and what Arrow type it loads as (docs/config.md,
"Database types").

Every type is decided once per column and run, before the first row streams:
- types the ADBC driver decodes exactly (integers, floats, text, bytea, date/time, interval,
  json) are read natively; `oid` is read as bigint (the driver's int32 wraps values >= 2^31);
- `numeric` is read as the server's text and cast in Arrow: a declared numeric(p, s) as
  decimal(p, s); an unconstrained `numeric` (and `money`, read as numeric) as the type its
  values need, measured in the same snapshot (`measured_decimal`): decimal(digits + scale,
  scale) of its largest values, decimal256 (BIGNUMERIC) past 38 digits up to 38 integer
  digits and 38 decimals, else the exact text. NaN and ±Infinity have no decimal value
  and follow `on_unrepresentable` (`NumericReader`);
- an array column whose values have more than one dimension (`array_ndims`, measured in the
  same snapshot: `pg_attribute.attndims` is not enforced) is read as JSON (`[[1,2],[3,4]]`),
  never flattened; one-dimensional arrays stay Arrow lists;
- hstore is read as a JSON object; every other type (uuid, enums, ranges, citext, inet, cidr,
  macaddr, geometric types, xml, bit/varbit, tsvector, timetz, reg* types...) as the server's
  exact text. A domain is reported by the server as its base type and loads as that type.
Source: PostgreSQL manual, "Data Types" (https://www.postgresql.org/docs/current/datatype.html),
"Arrays" §8.15 (dimensions are not enforced) and "Numeric Types" §8.1.2 (NaN, Infinity).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from etl.exceptions import SchemaMappingError, UnrepresentableValueError
from etl.schema import JSON_FIELD_METADATA

PG_TYPE = b"POSTGRESQL:type"
PG_TYPMOD = b"POSTGRESQL:typmod"

NATIVE_TYPES = frozenset(
    {
        "int2",
        "int4",
        "int8",
        "float4",
        "float8",
        "bool",
        "text",
        "varchar",
        "bpchar",
        "name",
        "char",
        "bytea",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "json",
        "jsonb",
    }
)
"""PostgreSQL types the ADBC driver decodes into an exact Arrow type; others are read as text
(or as below)."""

SPECIAL_NUMERICS = ("NaN", "Infinity", "-Infinity")
"""numeric values with no decimal representation, as the server writes them."""


def _string_array(values: tuple[str, ...]) -> pa.Array:
    """Return `values` as an Arrow string array built from its buffers: pyarrow imports pandas
    (~40 MB, ~0.3 s) the first time it converts a Python list."""
    data = [value.encode() for value in values]
    offsets = [0]
    for item in data:
        offsets.append(offsets[-1] + len(item))
    return pa.Array.from_buffers(
        pa.string(),
        len(values),
        [
            None,
            pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets)),
            pa.py_buffer(b"".join(data)),
        ],
    )


NUMERIC_WARNING = (
    "column `{column}`: {count} {values} NaN/Infinity loaded as NULL (on_unrepresentable: nearest)"
)
"""The run warning of a numeric column whose NaN/±Infinity values were loaded as NULL."""

EXACT_TEXT = {b"etl.exact_text": b"numeric"}
"""Field metadata of a numeric column loaded as its exact text (no decimal type holds it)."""


def pg_type(field: pa.Field) -> str:
    """Return the PostgreSQL type name the driver reports (`_int4` for int4[])."""
    return (field.metadata or {}).get(PG_TYPE, b"").decode() or "unknown"


def declared_decimal(field: pa.Field) -> pa.DataType | None:
    """Return decimal(p, s) of a numeric(p, s) column, or None when it is unconstrained or no
    Arrow decimal that BigQuery can hold covers its declaration (then the data decides)."""
    typmod = int((field.metadata or {}).get(PG_TYPMOD, b"-1"))
    if typmod < 4:
        return None
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    if scale > precision or scale > 38 or precision - scale > 38:
        return None
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(min(precision, 76), scale)


def measured_decimal(integer_digits: int | None, scale: int | None) -> pa.DataType:
    """Return the type an unconstrained numeric column loads as, from its largest number of
    integer digits and of decimals among the finite values in this run's window (both None:
    no finite value).

    The type fits the data exactly, decimal(digits + scale, scale), so that the union of two
    runs' types (schema evolution, etl/load/duckdb/ `widened`) is what their values need:
    decimal128 up to 38 digits, decimal256 (BigQuery BIGNUMERIC; DuckDB: the exact text) up to
    38 integer digits and 38 decimals, else string (the exact text). No finite value:
    decimal(1, 0), which widens to whatever a later run brings."""
    if integer_digits is None and scale is None:
        return pa.decimal128(1, 0)
    digits, scale = max(integer_digits or 1, 1), scale or 0
    if digits + scale <= 38:
        return pa.decimal128(digits + scale, scale)
    if digits <= 38 and scale <= 38:
        return pa.decimal256(digits + scale, scale)
    return pa.string()


@dataclass
class ColumnRead:
    """How one column is selected and what it loads as."""

    expression: str
    """The SELECT expression (aliased by the caller)."""
    kind: str = "native"
    """`native`, `numeric` (server text cast in Arrow), `json` (JSON text), `text`."""
    profile: list[str] = field(default_factory=list)
    """Aggregates over the window this column needs before its type is known."""


def plan_column(raw: pa.Field, name: str) -> ColumnRead:
    """Return how to read column `raw` (its LIMIT 0 field); `name` is its quoted name."""
    kind = pg_type(raw)
    is_array = kind.startswith("_")
    base = kind.removeprefix("_")
    if kind in ("numeric", "money"):
        source = f"{name}::numeric" if kind == "money" else name
        profile = []
        if kind == "money" or declared_decimal(raw) is None:
            finite = f"{source} > '-Infinity' AND {source} < 'Infinity'"
            profile = [
                f"max(length(trunc(abs({source}))::text)) FILTER (WHERE {finite})",
                f"max(scale({source})) FILTER (WHERE {finite})",
            ]
        # the server's text form, cast to decimal in Arrow: ~4x less CPU than the driver's own
        # decoding of binary numerics (which also yields text). Not `(value * 10^s)::int8`:
        # numeric arithmetic costs the server ~4x the text output (TPC-H lineitem SF 1, four
        # numeric(15,2) columns: 5.6 s against 1.4 s of server CPU, bench/PROFILE.md)
        return ColumnRead(f"{source}::text", "numeric", profile)
    if is_array:
        element = name if base in NATIVE_TYPES else f"{name}::text[]"
        return ColumnRead(element, "array", [f"max(array_ndims({name}))"])
    if kind == "oid":
        return ColumnRead(f"{name}::bigint")
    if kind == "hstore":
        return ColumnRead(f"{name}::json::text", "json")
    if kind in NATIVE_TYPES:
        return ColumnRead(name)
    return ColumnRead(f"{name}::text", "text")


def multi_dimensional(name: str) -> ColumnRead:
    """Return the read of an array column holding values of more than one dimension: JSON."""
    return ColumnRead(f"array_to_json({name})::text", "json")


class NumericReader:
    """Turns the server text of numeric columns into their Arrow type, applying the
    `on_unrepresentable` policy to NaN and ±Infinity and counting what it adjusted."""

    def __init__(self, table: str, policy: str) -> None:
        self.table, self.policy = table, policy
        self.adjusted: dict[str, int] = {}
        """Column -> NaN/±Infinity values loaded as NULL."""

    def convert(self, text: pa.Array, target: pa.Field) -> pa.Array:
        """Return `text` (numeric as the server writes it) as `target`'s type.

        Raises:
            UnrepresentableValueError: a NaN/±Infinity under `on_unrepresentable: fail`.
            SchemaMappingError: a value does not fit `target` (names the column).
        """
        special = pc.is_in(text, value_set=_string_array(SPECIAL_NUMERICS))
        count = pc.sum(special).as_py() or 0
        if count:
            if self.policy == "fail":
                value = pc.filter(text, special)[0].as_py()
                raise UnrepresentableValueError(self.table, target.name, value, "numeric")
            self.adjusted[target.name] = self.adjusted.get(target.name, 0) + count
            text = pc.if_else(special, pa.scalar(None, pa.string()), text)
        if target.type == pa.string():
            return text
        try:
            return pc.cast(text, target.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaMappingError(target.name, str(target.type), str(exc)) from exc

    def warnings(self) -> list[str]:
        return [
            NUMERIC_WARNING.format(
                column=name, count=count, values="value" if count == 1 else "values"
            )
            for name, count in sorted(self.adjusted.items())
        ]


def arrow_field(
    name: str, read: ColumnRead, driver: pa.Field, numeric: pa.DataType | None
) -> pa.Field:
    """Return the field a column loads as: `numeric` for numeric reads, JSON-marked text for
    JSON reads, the driver's type (extension types unwrapped) otherwise."""
    if read.kind == "numeric":
        assert numeric is not None
        metadata = EXACT_TEXT if numeric == pa.string() else None
        return pa.field(name, numeric, metadata=metadata)
    if read.kind == "json" or pg_type(driver) in ("json", "jsonb"):
        return pa.field(name, pa.string(), metadata=JSON_FIELD_METADATA)
    data_type = driver.type
    if isinstance(data_type, pa.ExtensionType):
        data_type = data_type.storage_type
    elif pa.types.is_list(data_type) and isinstance(data_type.value_type, pa.ExtensionType):
        data_type = pa.list_(data_type.value_type.storage_type)
    return pa.field(name, data_type)
