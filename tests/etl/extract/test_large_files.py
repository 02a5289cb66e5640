"""Bad input in files larger than several read blocks (issue 5, item 4): CSV quoted values with
line breaks and doubled quotes straddling the 4 MB block borders (etl.formats.read.BLOCK_SIZE,
unchanged here), a ragged row far past the first block, and JSONL fields whose type changes,
or that first appear, after the first blocks. Every row is checked by count, id sum and a digest
of the values, and the rows at the borders exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from etl import BadInputError, JobConfig, run
from etl.formats.read import BLOCK_SIZE
from etl.state import RunResult
from tests.etl.support import DATASET, duck_query, duck_table_exists, local_file_job

CSV_SIZE = 18 << 20
"""Bytes of the generated CSV: 4 block borders inside it."""


def _run(tmp_path: Path, name: str, content: bytes, fmt: str, **fields: Any) -> RunResult:
    return run(JobConfig.parse(local_file_job(tmp_path, name, content, fmt, **fields)))


def _border_body(head: int, variant: int) -> str:
    """A quoted value's text (CSV-escaped) whose character `head` sits right after a block
    border: the border splits a doubled quote (1), follows an embedded line break (2), precedes
    the closing quote (3) or follows the opening quote (4)."""
    filler = '""\nsaid ""x"", then\n'
    if variant == 4:
        assert head == 0
        return 'opening quote at the border\n""y""'
    before = filler + "a" * (head - len(filler) - 1)
    return {
        1: before + '"' + '" split\nafter',
        2: before + "\n" + 'next line ""q""',
        3: before + "z",
    }[variant]


def _big_csv(bad_record: int | None = None) -> tuple[bytes, dict[str, Any]]:
    """Return the CSV bytes and what it holds: `rows`, `id_sum`, `digest` (md5 of the notes in
    id order joined by \\x1f), `borders` ({id: (amount text, note)} of the rows straddling a
    block border) and, with `bad_record`, `bad_line` (physical line the 2-field record starts
    on)."""
    parts = ["id,amount,note\n"]
    size, lines = len(parts[0]), 1
    notes: list[str] = []
    borders: dict[int, tuple[str, str]] = {}
    expected: dict[str, Any] = {}
    border, variant = BLOCK_SIZE, 1
    i = 0
    while size < CSV_SIZE:
        i += 1
        amount = f"{i % 1000}.{i % 100:02d}"
        prefix = f"{i},{amount},"
        if i == bad_record:
            row = f"{i},{amount}\n"
            expected["bad_line"] = lines + 1
        elif variant <= 4 and 100 <= border - size - len(prefix) - 1 < 400:
            if variant == 4:  # a filler row first, so this row's opening quote ends the block
                gap = border - size - len(prefix) - 1
                filler = f"{i},{amount},{'f' * (gap - len(prefix) - 1)}\n"
                assert len(filler) == gap
                parts.append(filler)
                notes.append("f" * (gap - len(prefix) - 1))
                size += gap
                lines += 1
                i += 1
                amount = f"{i % 1000}.{i % 100:02d}"
                prefix = f"{i},{amount},"
                assert border - size == len(prefix) + 1
            head = border - size - len(prefix) - 1  # characters of the value before the border
            body = _border_body(head, variant)
            row = f'{prefix}"{body}"\n'
            cut = border - size
            assert row[cut - 1 : cut + 1] == ['""', "\nn", 'z"', '"o'][variant - 1]
            borders[i] = (amount, body.replace('""', '"'))
            notes.append(body.replace('""', '"'))
            border, variant = border + BLOCK_SIZE, variant + 1
        elif i % 10 == 0:
            row = f'{prefix}"row {i} said ""hi""\nand, left"\n'
            notes.append(f'row {i} said "hi"\nand, left')
        else:
            row = f"{prefix}n{i}\n"
            notes.append(f"n{i}")
        parts.append(row)
        size += len(row)
        lines += row.count("\n")
    assert variant == 5, "every border got its straddling row"
    ids = [n for n in range(1, i + 1) if n != bad_record]
    expected.update(
        rows=len(ids),
        id_sum=sum(ids),
        digest=hashlib.md5("\x1f".join(notes).encode()).hexdigest(),
        borders=borders,
    )
    return "".join(parts).encode(), expected


def test_quoted_line_breaks_and_quotes_across_block_borders(tmp_path: Path) -> None:
    """An 18 MB CSV whose quoted values hold line breaks and doubled quotes, four of them
    straddling a 4 MB block border (splitting a doubled quote, after a line break, before the
    closing quote, after the opening quote), loads every row exactly with
    `allow_quoted_newlines`: the count, the id sum, the digest of all notes, and the four border
    rows value by value."""
    content, expected = _big_csv()
    assert len(content) > 4 * BLOCK_SIZE

    result = _run(
        tmp_path, "big.csv", content, "csv", file_format_options={"allow_quoted_newlines": True}
    )

    path = tmp_path / "w.duckdb"
    assert result.rows_loaded == expected["rows"]
    assert duck_query(
        path,
        f"SELECT count(*), sum(id), md5(string_agg(note, chr(31) ORDER BY id)) FROM {DATASET}.t",
    ) == [(expected["rows"], expected["id_sum"], expected["digest"])]
    ids = sorted(expected["borders"])
    rows = duck_query(
        path,
        f"SELECT id, amount, note FROM {DATASET}.t WHERE id IN ({','.join(map(str, ids))}) "
        "ORDER BY id",
    )
    assert rows == [(n, float(expected["borders"][n][0]), expected["borders"][n][1]) for n in ids]


def test_ragged_record_far_past_the_first_block_names_its_line_and_record(
    tmp_path: Path,
) -> None:
    """In the same file with record 600,000 cut to 2 fields (about 15 MB in, after 60,000
    values spanning two lines), the run fails naming the physical line that record starts on
    (from 1, the header being line 1) and its data record number; nothing is written."""
    content, expected = _big_csv(bad_record=600_000)
    line = expected["bad_line"]
    start = content.index(b"\n600000,") + 1  # the bad record, found in the bytes themselves
    assert line == content.count(b"\n", 0, start) + 1
    assert line > 1 + 599_999 + 59_999  # values spanning lines put it well past line 600,000

    with pytest.raises(
        BadInputError,
        match=rf"file big\.csv, line {line}\): expected 3 fields, got 2 "
        r"\(data record 600000, which starts on this line\)",
    ):
        _run(
            tmp_path, "big.csv", content, "csv", file_format_options={"allow_quoted_newlines": True}
        )
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


JSONL_LINES = 150_000
CHANGE_AT = 100_001
"""First line where `v` is not an integer (lines count from 1)."""
PAD = "p" * 40


def _big_jsonl(late_value: object) -> tuple[bytes, list[dict[str, Any]]]:
    """Return ~10 MB of JSONL (`id`, `v`, `late`, `pad`) and its records: `v` an integer on
    every line but CHANGE_AT, where it is `late_value`; `late` null up to line 140,000 and the
    line number after; `extra` present only on the last line."""
    records = []
    for n in range(1, JSONL_LINES + 1):
        record: dict[str, Any] = {
            "id": n,
            "v": n * 3,
            "late": n if n > 140_000 else None,
            "pad": PAD,
        }
        if n == CHANGE_AT:
            record["v"] = late_value
        if n == JSONL_LINES:
            record["extra"] = True
        records.append(record)
    content = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    assert len(content) > 2 * BLOCK_SIZE
    return content, records


def _types(tmp_path: Path) -> dict[str, str]:
    return dict(
        duck_query(
            tmp_path / "w.duckdb",
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 't' AND column_name NOT LIKE '\\_etl\\_%' ESCAPE '\\'",
        )
    )


def test_jsonl_integer_widens_to_double_and_late_fields_load_after_the_first_blocks(
    tmp_path: Path,
) -> None:
    """`v` is an integer for 100,000 lines, then 0.5 on line 100,001: the column is DOUBLE and
    every value exact; `late`, null through the first blocks, is BIGINT with its 10,000 values;
    `extra`, only on the last line, is BOOLEAN."""
    content, records = _big_jsonl(0.5)

    result = _run(tmp_path, "big.jsonl", content, "jsonl")

    assert result.rows_loaded == JSONL_LINES
    assert _types(tmp_path) == {
        "id": "BIGINT",
        "v": "DOUBLE",
        "late": "BIGINT",
        "pad": "VARCHAR",
        "extra": "BOOLEAN",
    }
    v_sum = sum(r["v"] for r in records)
    late_sum = sum(r["late"] for r in records if r["late"] is not None)
    assert duck_query(
        tmp_path / "w.duckdb",
        f"SELECT count(*), sum(id), sum(v), count(late), sum(late), count(extra) FROM {DATASET}.t",
    ) == [(JSONL_LINES, JSONL_LINES * (JSONL_LINES + 1) // 2, v_sum, 10_000, late_sum, 1)]
    assert duck_query(
        tmp_path / "w.duckdb",
        f"SELECT id, v, late, extra FROM {DATASET}.t WHERE id IN (100000, 100001, 150000) "
        "ORDER BY id",
    ) == [
        (100_000, 300_000.0, None, None),
        (100_001, 0.5, None, None),
        (150_000, 450_000.0, 150_000, True),
    ]


@pytest.mark.parametrize("on_bad_rows", ["fail", "quarantine"])
def test_jsonl_string_after_the_first_blocks_widens_the_field_to_text(
    tmp_path: Path, on_bad_rows: str
) -> None:
    """`v` is a string on line 100,001 after 100,000 integers (blocks typed earlier said
    BIGINT): `v` loads as text over the whole file, every integer as its JSON text, with a
    warning counting the 149,999 numbers stored that way; nothing is rejected, quarantine or
    not (issue 17, item 6)."""
    content, records = _big_jsonl("x")

    result = _run(tmp_path, "big.jsonl", content, "jsonl", on_bad_rows=on_bad_rows)

    assert (result.rows_loaded, result.rows_rejected) == (JSONL_LINES, 0)
    assert _types(tmp_path)["v"] == "VARCHAR"
    v_sum = sum(r["v"] for r in records if r["id"] != CHANGE_AT)
    assert duck_query(
        tmp_path / "w.duckdb",
        f"SELECT count(*), sum(TRY_CAST(v AS BIGINT)), count(*) FILTER (v = 'x'), sum(late) "
        f"FROM {DATASET}.t",
    ) == [(JSONL_LINES, v_sum, 1, sum(range(140_001, 150_001)))]
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT id, v FROM {DATASET}.t WHERE id IN (1, 100001) ORDER BY id"
    ) == [(1, "3"), (CHANGE_AT, "x")]
    assert result.warnings == [
        f"file big.jsonl, field v: values of different kinds; loaded as STRING, "
        f"{JSONL_LINES - 1} non-string values stored as their JSON text"
    ]
