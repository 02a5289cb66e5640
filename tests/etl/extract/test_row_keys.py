"""Boundary keys of integer primary keys are built by Arrow (etl/extract/keys.py
`row_keys`): the text must be exactly the per-row `json.dumps` one that states already hold, or
a run after an upgrade would reload the rows at its watermark."""

from __future__ import annotations

import json

import pyarrow as pa

from etl.extract.incremental import row_keys


def test_integer_keys_are_the_json_text_of_earlier_states() -> None:
    batch = pa.record_batch(
        {
            "big": pa.array([0, -5, None, 2**63 - 1, -(2**63)], pa.int64()),
            "unsigned": pa.array([1, None, 3, 2**64 - 1, 0], pa.uint64()),
            "tiny": pa.array([1, 2, 3, 127, -128], pa.int8()),
            "name": pa.array(["a", "b", "c", "d", "e"]),
        }
    )
    columns = ["big", "unsigned", "tiny"]
    per_row = [
        json.dumps(row, default=str, separators=(",", ":"))
        for row in zip(*(batch.column(name).to_pylist() for name in columns), strict=True)
    ]

    keys = row_keys(batch, columns)

    assert keys == per_row
    assert keys[1] == "[-5,null,2]"
    assert keys[3] == "[9223372036854775807,18446744073709551615,127]"
    # a key with a text column still takes the per-row path (json.dumps escapes text)
    assert row_keys(batch, ["big", "name"])[0] == '[0,"a"]'
