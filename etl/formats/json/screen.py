"""The diagnostic path of the JSON readers: a chunk Arrow cannot read as it is, or whose types
conflict with the earlier chunks', is read line by line in Python to find the bad lines and the
fields whose values change kind (etl/formats/json/lines.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa

from etl.formats.json.drift import Drift, note
from etl.formats.json.types import first_conflict, kind, merge, value_type

OnBadLine = Callable[[int, str | None, str, str], None]
"""Called with (line, field or None, reason, the line's text) for each bad line."""


LONE_SURROGATE = (
    'invalid JSON (a \\u escape of a lone UTF-16 surrogate, e.g. "\\ud800", is not valid Unicode)'
)
"""Reason of a line holding a lone surrogate escape (RFC 8259 §8.2: such strings are not
interoperable). Python's `json.loads` decodes the escape and the failure comes later, away from
the line: https://github.com/dgtlmoon/changedetection.io/pull/4293."""


def _valid_unicode(record: object) -> bool:
    """False when a key or string of a parsed JSON value holds a lone UTF-16 surrogate."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def screen(
    chunk: bytes,
    first_line: int,
    types: dict[str, pa.DataType],
    on_bad: OnBadLine,
    noun: str = "lines",
    drift: Drift | None = None,
) -> bytes:
    """Return `chunk` without its bad lines, reporting each to `on_bad`; `types` (field ->
    type of the earlier lines) is updated with the good lines (Python types: text as text).
    `noun` names the lines in reasons (`elements` for a JSON array). With `drift`, a value of
    another kind than the earlier lines gave its field does not make its line bad: the field
    is noted in `drift` (etl/formats/json/drift.py) instead."""
    good = []
    for number, raw in enumerate(chunk.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        try:
            record = json.loads(raw)
        except ValueError as exc:
            on_bad(number, None, f"invalid JSON ({exc})", text)
            continue
        if not isinstance(record, dict):
            on_bad(number, None, f"a JSON {kind(value_type(record))}, not an object", text)
            continue
        if b"\\u" in raw and not _valid_unicode(record):
            # Python's json accepts a lone surrogate escape (`"\ud800"`), Arrow's reader does
            # not: without this the whole chunk failed, named by its first line
            on_bad(number, None, LONE_SURROGATE, text)
            continue
        found = None
        for name, value in record.items():
            if name in types and (drift is None or name not in drift):
                found = first_conflict(types[name], value, name)
                if found and drift is not None:
                    note(drift, *found)
                    found = None
                elif found:
                    break
        if found:
            path, got, expected = found
            on_bad(number, path, f"a {got} where earlier {noun} have a {expected}", text)
            continue
        for name, value in record.items():
            if drift is not None and name in drift:
                continue
            merged = merge(types[name], value_type(value), name) if name in types else None
            types[name] = merged if merged is not None else value_type(value)
        good.append(raw)
    return b"\n".join(good) + b"\n" if good else b""
