"""JSON fields whose values change kind between lines (schema drift), widened instead of refused.

- A field holding scalars of different kinds (number and string, boolean and string, number
  and boolean) becomes text: a string keeps its value, any other value becomes its JSON text as
  written in the file (`1.50` stays `1.50`, `true` becomes `true`), so nothing is rounded or
  reformatted.
- A field that is an object or an array on some lines and something else on others (or whose
  members drift in kind) becomes JSON: each value is stored as its JSON text, numbers as
  written.

This is what BigQuery's own loader cannot do (a JSONL load job fails on the first line of
another kind) and what dlt does with its variant columns and Airbyte with its `string` widening.
Arrow's JSON reader refuses a value of another kind than its explicit schema says, so the lines
of a drifting field are rewritten in Python (`rewrite`) before Arrow reads them.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from etl.schema import JSON_FIELD_METADATA

STRING = "string"
"""Mode of a field whose values are scalars of different kinds."""
JSON = "json"
"""Mode of a field whose values are objects or arrays and something else."""

Drift = dict[str, str]
"""Top-level field name -> STRING or JSON."""


class _Int(int):
    text: str


class _Number(float):
    text: str


def _int(text: str) -> _Int:
    value = _Int(text)
    value.text = text
    return value


def _float(text: str) -> _Number:
    value = _Number(text)
    value.text = text
    return value


def parse(raw: bytes) -> Any:
    """Parse one JSON line, numbers keeping the text they were written with.

    Raises:
        ValueError: not JSON.
    """
    return json.loads(raw, parse_int=_int, parse_float=_float)


def note(drift: Drift, path: str, got: str, expected: str) -> str:
    """Record in `drift` that the value at `path` (`field`, `field.member`, `field[]`) is of
    kind `got` where earlier lines have `expected`; return the top-level field's name."""
    name = path.split(".", 1)[0].split("[]", 1)[0]
    nested = path != name or {got, expected} & {"object", "array"}
    if nested or drift.get(name) == JSON:
        drift[name] = JSON
    else:
        drift[name] = STRING
    return name


def json_text(value: Any) -> str:
    """Return `value` (from `parse`) as compact JSON text, numbers as written."""
    if isinstance(value, (_Int, _Number)):
        return value.text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return (
        "{"
        + ",".join(
            f"{json.dumps(key, ensure_ascii=False)}:{json_text(item)}"
            for key, item in value.items()
        )
        + "}"
    )


def widened(value: Any, mode: str) -> str | None:
    """Return the text a drifting field stores for `value` under `mode` (NULL stays NULL)."""
    if value is None:
        return None
    if mode == STRING and isinstance(value, str):
        return value
    return json_text(value)


def file_schema(types: dict[str, pa.DataType], drift: Drift) -> pa.Schema | None:
    """Return the schema of a file's fields `types` (in order), the fields widened to JSON
    marked as such (`JSON_FIELD_METADATA`); None for a file without fields."""
    if not types:
        return None
    return pa.schema(
        [
            pa.field(name, kind, metadata=JSON_FIELD_METADATA if drift.get(name) == JSON else None)
            for name, kind in types.items()
        ]
    )


def rewrite(chunk: bytes, drift: Drift, counts: dict[str, int] | None = None) -> bytes:
    """Return `chunk` (JSON lines) with the values of the `drift` fields replaced by their text
    (`widened`), one line out per line in, so line numbers hold; a line that is not a JSON
    object is left as it is (the reader reports it). A STRING field meeting an object or array
    here becomes JSON in `drift`. `counts` (field -> values stored as their JSON text: every
    non-null value of a JSON field, the non-strings of a STRING field) is updated in place."""
    out = []
    # a line without any drifting field's name needs no parse (a name written with \u escapes
    # is missed here: Arrow then refuses the line's value loudly, it is never changed)
    names = [json.dumps(name, ensure_ascii=False).encode() for name in drift]
    for raw in chunk.split(b"\n"):
        if not raw.strip() or not any(name in raw for name in names):
            out.append(raw)
            continue
        try:
            record = parse(raw)
        except ValueError:
            out.append(raw)
            continue
        if not isinstance(record, dict):
            out.append(raw)
            continue
        for name in drift.keys() & record.keys():
            value = record[name]
            if drift[name] == STRING and isinstance(value, (dict, list)):
                drift[name] = JSON
            converted = drift[name] == JSON or not isinstance(value, str)
            if counts is not None and value is not None and converted:
                counts[name] = counts.get(name, 0) + 1
            record[name] = widened(value, drift[name])
        out.append(json_text(record).encode())
    return b"\n".join(out)


WARNING = {
    STRING: (
        "file {file}, field {field}: values of different kinds; loaded as STRING, "
        "{count} non-string values stored as their JSON text"
    ),
    JSON: (
        "file {file}, field {field}: objects or arrays mixed with values of another shape; "
        "loaded as JSON, {count} values stored as their JSON text"
    ),
}
"""The warning naming a field whose values change kind (etl/formats/json/drift.py)."""
