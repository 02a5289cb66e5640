"""`on_bad_rows: quarantine` (issue 5, item 4; shared/DESIGN.md §5 "Bad input").

CSV rows with the wrong number of fields, and rows holding a value that does not convert to the
type `file_format_options.column_types` gives its column, go to `<table>__rejected` (same
dataset) with file, line, column and reason, in the same commit as the good rows; the good rows
load. The default, `fail`, still fails the run before anything is written. Inferred columns
cannot hold a bad value (a CSV column is typed from every value of the file), and text that is
not valid in the file's encoding still fails the run: it means the encoding option is wrong.
JSONL lines that are not valid JSON, not an object, or hold a value of another kind than the
earlier lines gave the field are quarantined the same way. A Parquet file has no rows to set
aside: one that does not read fails the run naming the file, quarantine or not.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl import BadInputError, JobConfig, run
from etl.formats.json.array import _Watch
from etl.formats.json.screen import LONE_SURROGATE
from tests.etl.support import (
    DATASET,
    bigquery_destination,
    bq_rows,
    duck_query,
    duck_table_exists,
    job_config,
)

BAD = (
    b"id,amount,day\n"
    b"1,1.50,2024-01-01\n"
    b"2,x,2024-01-02\n"  # line 3: amount is not a decimal
    b"3,3.25\n"  # line 4: 2 fields
    b"4,4.00,2024-01-04,extra\n"  # line 5: 4 fields
    b"5,5.00,2024-13-01\n"  # line 6: no month 13
    b"6,6.00,2024-01-06\n"
)
GOOD = b"id,amount,day\n7,7.00,2024-01-07\n"
TYPES = {"amount": "decimal(10,2)", "day": "date"}

LOADED = [
    (1, Decimal("1.50"), dt.date(2024, 1, 1)),
    (6, Decimal("6.00"), dt.date(2024, 1, 6)),
    (7, Decimal("7.00"), dt.date(2024, 1, 7)),
]
REJECTED = [
    ("a.csv", 3, "amount", "value 'x' is not a valid decimal(10,2)", "2,x,2024-01-02"),
    ("a.csv", 4, None, "expected 3 fields, got 2", "3,3.25"),
    ("a.csv", 5, None, "expected 3 fields, got 4", "4,4.00,2024-01-04,extra"),
    ("a.csv", 6, "day", "value '2024-13-01' is not a valid date", "5,5.00,2024-13-01"),
]


def _files(tmp_path: Path) -> Path:
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_bytes(BAD)
    (base / "b.csv").write_bytes(GOOD)
    return base


def _job(base: Path, duckdb_path: Path, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(base)},
            file_pattern="*.csv",
            file_format="csv",
            dest_table_name="t",
            file_format_options={"column_types": TYPES},
            **fields,
        )
    )


def test_quarantine_loads_good_rows_and_rejects_bad_ones_into_duckdb(tmp_path: Path) -> None:
    """Of 7 rows, the 3 good ones load; the 4 bad ones land in `t__rejected` with file, line,
    column (NULL for a row with the wrong field count), reason and the record; the run reports
    `rows_rejected` 4 and both files as processed."""
    duckdb_path = tmp_path / "w.duckdb"
    result = run(_job(_files(tmp_path), duckdb_path, on_bad_rows="quarantine"))

    assert (result.rows_loaded, result.rows_rejected) == (3, 4)
    assert sorted(result.state.files) == ["a.csv", "b.csv"]
    assert duck_query(duckdb_path, f"SELECT id, amount, day FROM {DATASET}.t ORDER BY id") == LOADED
    assert (
        duck_query(
            duckdb_path,
            f'SELECT file, line, "column", reason, record FROM {DATASET}.t__rejected ORDER BY line',
        )
        == REJECTED
    )
    assert duck_query(duckdb_path, f"SELECT DISTINCT _etl_run_id FROM {DATASET}.t__rejected") == [
        (result.run_id,)
    ]


def test_quarantine_of_a_clean_file_creates_no_rejected_table(tmp_path: Path) -> None:
    """Nothing rejected: `rows_rejected` 0 and no `t__rejected` table."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "b.csv").write_bytes(GOOD)
    duckdb_path = tmp_path / "w.duckdb"

    result = run(_job(base, duckdb_path, on_bad_rows="quarantine"))

    assert (result.rows_loaded, result.rows_rejected) == (1, 0)
    assert not duck_table_exists(duckdb_path, "t__rejected")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            b"id,amount,day\n1,1.50,2024-01-01\n2,x,2024-01-02\n",
            r"file a\.csv, line 3, column `amount`\): value 'x' is not a valid decimal",
        ),
        (
            b"id,amount,day\n1,1.50,2024-01-01\n3,3.25\n",
            r"file a\.csv, line 3\): expected 3 fields, got 2",
        ),
    ],
    ids=["bad-value", "ragged-row"],
)
def test_default_fails_before_writing(tmp_path: Path, content: bytes, match: str) -> None:
    """Without quarantine the first bad row fails the run naming file, line (and column) and
    nothing is written: no table, no rejected table."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_bytes(content)
    duckdb_path = tmp_path / "w.duckdb"

    with pytest.raises(BadInputError, match=match):
        run(_job(base, duckdb_path))

    assert not duck_table_exists(duckdb_path, "t")
    assert not duck_table_exists(duckdb_path, "t__rejected")


@pytest.mark.integration
def test_quarantine_into_the_bigquery_emulator(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same files into the BigQuery emulator: the good rows in `t`, the bad ones in
    `t__rejected`, committed together; no staging table is left."""
    job = JobConfig.parse(
        {
            **job_config(
                "local",
                tmp_path / "unused.duckdb",
                connection_params={"base_path": str(_files(tmp_path))},
                file_pattern="*.csv",
                file_format="csv",
                dest_table_name="t",
                file_format_options={"column_types": TYPES},
                on_bad_rows="quarantine",
            ),
            "destination": bigquery_destination(bq_dataset),
        }
    )

    result = run(job)

    assert (result.rows_loaded, result.rows_rejected) == (3, 4)
    assert (
        bq_rows(bigquery_client, f"SELECT id, amount, day FROM `{bq_dataset}.t` ORDER BY id")
        == LOADED
    )
    assert (
        bq_rows(
            bigquery_client,
            f"SELECT file, line, `column`, reason, record FROM `{bq_dataset}.t__rejected` ORDER BY line",
        )
        == REJECTED
    )
    assert [
        t.table_id for t in bigquery_client.list_tables(bq_dataset) if "__etl_staging" in t.table_id
    ] == []


V1 = (
    b"id,amount,day\n"
    b"1,1.00,2024-01-01\n"
    b"2,x,2024-01-02\n"  # line 3: bad amount
    b"3,3.00\n"  # line 4: 2 fields
)
V2 = (
    b"id,amount,day\n"
    b"1,1.00,2024-01-01\n"
    b"2,2.00,2024-01-02\n"
    b"3,3.00,2024-01-03\n"
    b"4,4.00,2024-02-30\n"  # line 5: no February 30
)
V2_REJECTED = [("a.csv", 5, "day", "value '2024-02-30' is not a valid date", "4,4.00,2024-02-30")]
V2_LOADED = [
    (1, Decimal("1.00"), dt.date(2024, 1, 1)),
    (2, Decimal("2.00"), dt.date(2024, 1, 2)),
    (3, Decimal("3.00"), dt.date(2024, 1, 3)),
]


def _changed_file_runs(tmp_path: Path, destination: dict[str, Any] | None) -> tuple[Any, Any]:
    """Run version 1 of `a.csv` (2 bad rows), then version 2 (1 other bad row) transactionally."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.csv").write_bytes(V1)
    config = job_config(
        "local",
        tmp_path / "w.duckdb",
        connection_params={"base_path": str(base)},
        file_pattern="*.csv",
        file_format="csv",
        dest_table_name="t",
        file_format_options={"column_types": TYPES},
        on_bad_rows="quarantine",
    )
    if destination is not None:
        config["destination"] = destination
    first = run(JobConfig.parse(config))
    assert (first.rows_loaded, first.rows_rejected) == (1, 2)
    (base / "a.csv").write_bytes(V2)
    second = run(JobConfig.parse(config), first.state)
    assert (second.rows_loaded, second.rows_rejected, second.files_loaded) == (3, 1, ["a.csv"])
    return first, second


def test_changed_file_replaces_its_rejects_in_duckdb(tmp_path: Path) -> None:
    """A new version of `a.csv` replaces the file's rows in `t` and its rejects in
    `t__rejected`: version 1's 2 rejects are gone, version 2's 1 reject is the only row."""
    _, second = _changed_file_runs(tmp_path, None)
    duckdb_path = tmp_path / "w.duckdb"

    assert (
        duck_query(duckdb_path, f"SELECT id, amount, day FROM {DATASET}.t ORDER BY id") == V2_LOADED
    )
    assert duck_query(
        duckdb_path,
        f'SELECT file, line, "column", reason, record, _etl_run_id FROM {DATASET}.t__rejected',
    ) == [(*V2_REJECTED[0], second.run_id)]


@pytest.mark.integration
def test_changed_file_replaces_its_rejects_in_the_bigquery_emulator(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same two versions into the BigQuery emulator: `t__rejected` holds exactly version
    2's reject, `t` exactly version 2's good rows."""
    _, second = _changed_file_runs(tmp_path, bigquery_destination(bq_dataset))

    assert (
        bq_rows(bigquery_client, f"SELECT id, amount, day FROM `{bq_dataset}.t` ORDER BY id")
        == V2_LOADED
    )
    assert bq_rows(
        bigquery_client,
        f"SELECT file, line, `column`, reason, record, _etl_run_id FROM `{bq_dataset}.t__rejected`",
    ) == [(*V2_REJECTED[0], second.run_id)]


JSONL = (
    b'{"id":1,"v":1.5,"s":"a"}\n'
    b'{"id":2,"v":2,"s":null}\n'
    b'{"id":3,"v":"x","s":"c"}\n'  # line 3: a string where `v` has numbers: `v` is text
    b"\n"
    b'{"id":5,"v":4.5\n'  # line 5: not valid JSON
    b"[6]\n"  # line 6: not an object
    b'{"id":7,"v":7.25,"s":"g","o":{"k":1}}\n'
    b'{"id":8,"o":{"k":"y"}}\n'  # line 8: a string where `o.k` has numbers: `o` is JSON
)
JSONL_LOADED = [
    (1, "1.5", "a", None),
    (2, "2", None, None),
    (3, "x", "c", None),
    (7, "7.25", "g", '{"k":1}'),
    (8, None, None, '{"k":"y"}'),
]
JSONL_REJECTED = [
    (
        "a.jsonl",
        5,
        None,
        "invalid JSON (Expecting ',' delimiter: line 1 column 16 (char 15))",
        '{"id":5,"v":4.5',
    ),
    ("a.jsonl", 6, None, "a JSON array, not an object", "[6]"),
]


def _jsonl_job(base: Path, duckdb_path: Path, **fields: Any) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(base)},
            file_pattern="*.jsonl",
            file_format="jsonl",
            dest_table_name="t",
            **fields,
        )
    )


def test_jsonl_quarantine_loads_good_lines_and_rejects_bad_ones(tmp_path: Path) -> None:
    """Of 7 JSONL lines (one more is blank), the 5 objects load (`v`, numbers and a string, as
    text keeping each number's JSON text; `o`, whose member `o.k` is a number and a string, as
    JSON); the broken line and the array land in `t__rejected` with their physical line,
    reason and text."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.jsonl").write_bytes(JSONL)
    duckdb_path = tmp_path / "w.duckdb"

    result = run(_jsonl_job(base, duckdb_path, on_bad_rows="quarantine"))

    assert (result.rows_loaded, result.rows_rejected) == (5, 2)
    assert duck_query(duckdb_path, f"SELECT id, v, s, o FROM {DATASET}.t ORDER BY id") == (
        JSONL_LOADED
    )
    assert [w.split(":")[0] for w in result.warnings] == [
        "file a.jsonl, field v",
        "file a.jsonl, field o",
    ]
    assert (
        duck_query(
            duckdb_path,
            f'SELECT file, line, "column", reason, record FROM {DATASET}.t__rejected ORDER BY line',
        )
        == JSONL_REJECTED
    )


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (JSONL, r"file a\.jsonl, line 5\): invalid JSON \(Expecting ',' delimiter"),
        (
            b'{"id":1}\n{"id":2\n',
            r"file a\.jsonl, line 2\): invalid JSON \(Expecting ',' delimiter: line 1 column 8",
        ),
    ],
    ids=["first-bad-line", "invalid-json"],
)
def test_jsonl_default_fails_before_writing(tmp_path: Path, content: bytes, match: str) -> None:
    """Without quarantine the first bad JSONL line fails the run naming file, line (and field);
    no table is written."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.jsonl").write_bytes(content)
    duckdb_path = tmp_path / "w.duckdb"

    with pytest.raises(BadInputError, match=match):
        run(_jsonl_job(base, duckdb_path))

    assert not duck_table_exists(duckdb_path, "t")
    assert not duck_table_exists(duckdb_path, "t__rejected")


def test_parquet_quarantine_does_not_apply_a_broken_file_fails(tmp_path: Path) -> None:
    """Parquet has no row-level parse errors to set aside: under quarantine a file that does not
    read (here a good file cut in half) still fails the run naming it, and nothing is written,
    not even the good file's rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path / "in"
    base.mkdir()
    pq.write_table(pa.table({"id": [1, 2]}), base / "a.parquet")
    pq.write_table(pa.table({"id": list(range(1000))}), base / "b.parquet")
    whole = (base / "b.parquet").read_bytes()
    (base / "b.parquet").write_bytes(whole[: len(whole) // 2])
    duckdb_path = tmp_path / "w.duckdb"
    job = JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(base)},
            file_pattern="*.parquet",
            file_format="parquet",
            dest_table_name="t",
            on_bad_rows="quarantine",
        )
    )

    with pytest.raises(BadInputError, match=r"file b\.parquet\): not a readable Parquet file"):
        run(job)

    assert not duck_table_exists(duckdb_path, "t")
    assert not duck_table_exists(duckdb_path, "t__rejected")


CLEAN = b"id,amount,day\n1,1.00,2024-01-01\n2,2.00,2024-01-02\n"
CLEAN_LOADED = [
    (1, Decimal("1.00"), dt.date(2024, 1, 1)),
    (2, Decimal("2.00"), dt.date(2024, 1, 2)),
]


def test_catalog_rejects_follow_the_snapshot_in_duckdb(tmp_path: Path) -> None:
    """A catalog load replaces `t__rejected` together with `t`: after the snapshot with 2 bad
    rows and the one with 1, `t__rejected` holds exactly the second snapshot's reject; after a
    clean snapshot it holds 0 rows (and `t` exactly the clean file's 2 rows)."""
    duckdb_path = tmp_path / "w.duckdb"
    base = tmp_path / "in"
    base.mkdir()
    config = job_config(
        "local",
        duckdb_path,
        connection_params={"base_path": str(base)},
        file_pattern="*.csv",
        file_format="csv",
        dest_table_name="t",
        load_type="catalog",
        file_format_options={"column_types": TYPES},
        on_bad_rows="quarantine",
    )
    rejected = (
        f'SELECT file, line, "column", reason, record, _etl_run_id FROM {DATASET}.t__rejected'
    )
    loaded = f"SELECT id, amount, day FROM {DATASET}.t ORDER BY id"
    state = None
    observed = []
    for content in (V1, V2, CLEAN):
        (base / "a.csv").write_bytes(content)
        result = run(JobConfig.parse(config), state)
        state = result.state
        observed.append(
            (
                result.rows_loaded,
                result.rows_rejected,
                result.run_id,
                duck_query(duckdb_path, loaded),
                duck_query(duckdb_path, rejected + " ORDER BY line"),
            )
        )

    first, second, third = observed
    assert first[:2] == (1, 2)
    assert first[3] == [(1, Decimal("1.00"), dt.date(2024, 1, 1))]
    assert [row[1] for row in first[4]] == [3, 4]
    assert second[:2] == (3, 1)
    assert second[3] == V2_LOADED
    assert second[4] == [(*V2_REJECTED[0], second[2])]
    assert third[:2] == (2, 0)
    assert third[3] == CLEAN_LOADED
    assert third[4] == []


@pytest.mark.integration
def test_catalog_rejects_follow_the_snapshot_in_the_bigquery_emulator(
    tmp_path: Path, bq_dataset: str, bigquery_client: Any
) -> None:
    """The same three snapshots into the BigQuery emulator: after the second `t__rejected`
    holds exactly its 1 reject, after the clean one 0 rows, and `t` the clean file's 2 rows;
    no staging table is left."""
    base = tmp_path / "in"
    base.mkdir()
    config = {
        **job_config(
            "local",
            tmp_path / "unused.duckdb",
            connection_params={"base_path": str(base)},
            file_pattern="*.csv",
            file_format="csv",
            dest_table_name="t",
            load_type="catalog",
            file_format_options={"column_types": TYPES},
            on_bad_rows="quarantine",
        ),
        "destination": bigquery_destination(bq_dataset),
    }
    rejected = (
        f"SELECT file, line, `column`, reason, record, _etl_run_id FROM `{bq_dataset}.t__rejected`"
        " ORDER BY line"
    )
    loaded = f"SELECT id, amount, day FROM `{bq_dataset}.t` ORDER BY id"
    state = None
    observed = []
    for content in (V1, V2, CLEAN):
        (base / "a.csv").write_bytes(content)
        result = run(JobConfig.parse(config), state)
        state = result.state
        observed.append(
            (
                result.rows_loaded,
                result.rows_rejected,
                result.run_id,
                bq_rows(bigquery_client, loaded),
                bq_rows(bigquery_client, rejected),
            )
        )

    first, second, third = observed
    assert first[:2] == (1, 2)
    assert [row[1] for row in first[4]] == [3, 4]
    assert second[:2] == (3, 1)
    assert second[3] == V2_LOADED
    assert second[4] == [(*V2_REJECTED[0], second[2])]
    assert third[:2] == (2, 0)
    assert third[3] == CLEAN_LOADED
    assert third[4] == []
    assert [
        t.table_id for t in bigquery_client.list_tables(bq_dataset) if "__etl_staging" in t.table_id
    ] == []


SURROGATE_JSONL = b'{"id":1,"s":"ok"}\n{"id":2,"s":"\\ud83d\\ude00"}\n{"id":3,"s":"a\\ud800b"}\n{"id":4,"s":"z"}\n'
"""Line 3 holds a lone high surrogate escape; line 2 a valid pair (U+1F600)."""


def test_jsonl_lone_surrogate_is_a_bad_line_at_its_own_line(tmp_path: Path) -> None:
    """A lone UTF-16 surrogate escape (`"\\ud800"`) is valid JSON syntax but no Unicode text:
    without quarantine the run fails naming line 3 (before: `line 1`, the chunk's first line,
    and quarantine could not set it aside); with quarantine the other 3 lines load exactly, the
    valid pair as U+1F600, and line 3 is rejected. Field report:
    https://github.com/dgtlmoon/changedetection.io/pull/4293 (json.loads accepts the escape,
    a later UTF-8 step fails)."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.jsonl").write_bytes(SURROGATE_JSONL)
    duckdb_path = tmp_path / "w.duckdb"

    with pytest.raises(BadInputError, match=r"file a\.jsonl, line 3\): invalid JSON \(a \\u"):
        run(_jsonl_job(base, duckdb_path))
    assert not duck_table_exists(duckdb_path, "t")

    result = run(_jsonl_job(base, duckdb_path, on_bad_rows="quarantine"))

    assert (result.rows_loaded, result.rows_rejected) == (3, 1)
    assert duck_query(duckdb_path, f"SELECT id, s FROM {DATASET}.t ORDER BY id") == [
        (1, "ok"),
        (2, "\U0001f600"),
        (4, "z"),
    ]
    assert duck_query(
        duckdb_path, f'SELECT file, line, "column", record FROM {DATASET}.t__rejected'
    ) == [("a.jsonl", 3, None, '{"id":3,"s":"a\\ud800b"}')]


def _surrogate_json(shift: int, lone: bytes) -> bytes:
    """A JSON array whose element 3 holds the lone surrogate escape `lone`, element 2 a valid
    pair (U+1F600), element 4 a real `?`; element 1 is padded so that the lone escape starts
    `shift` bytes before the end of the first block the reader checks (its first 64 KiB read
    plus one `_Watch.BLOCK`)."""
    head = b'[{"id":1,"s":"'
    rest = (
        b'"},\n {"id":2,"s":"\\ud83d\\ude00"},\n {"id":3,"s":"' + lone + b'b"},\n'
        b' {"id":4,"s":"z?"}]\n'
    )
    escape_at = rest.index(lone)
    pad = (1 << 16) + _Watch.BLOCK - shift - len(head) - escape_at
    return head + b"p" * pad + rest


@pytest.mark.parametrize("lone", [b"\\ud800", b"\\udc00"], ids=["high", "low"])
@pytest.mark.parametrize(
    "shift", [1, 3, 6, 9, 11, 12, 15, 17, 18, 40], ids=lambda shift: f"mark-{shift}"
)
def test_json_array_lone_surrogate_is_a_bad_element_never_a_question_mark(
    tmp_path: Path, shift: int, lone: bytes
) -> None:
    """A JSON array file follows the JSONL policy for a lone UTF-16 surrogate escape: without
    quarantine the run fails naming the file and element 3, nothing written; with quarantine
    element 3 is rejected (reason and the element, escape kept) and the others load exactly
    (the pair as U+1F600, the real `?` as itself), wherever the escape falls against the
    reader's blocks. Before, yajl (ijson's C backend) turned a lone
    high surrogate into `?` silently and a lone low one failed the run as "text is not valid
    utf-8"; yajl's own report: https://github.com/lloyd/yajl/pull/232 (a truncated surrogate
    pair becomes `?`)."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.json").write_bytes(_surrogate_json(shift, lone))
    duckdb_path = tmp_path / "w.duckdb"
    config = JobConfig.parse(
        job_config(
            "local",
            duckdb_path,
            connection_params={"base_path": str(base)},
            file_pattern="*.json",
            file_format="json",
            dest_table_name="t",
        )
    )

    with pytest.raises(BadInputError, match=r"file a\.json\): element 3: invalid JSON \(a \\u"):
        run(config)
    assert not duck_table_exists(duckdb_path, "t")

    result = run(config.model_copy(update={"on_bad_rows": "quarantine"}))

    assert (result.rows_loaded, result.rows_rejected) == (3, 1)
    assert duck_query(duckdb_path, f"SELECT id, s FROM {DATASET}.t WHERE id > 1 ORDER BY id") == [
        (2, "\U0001f600"),
        (4, "z?"),
    ]
    record = '{"id":3,"s":"' + lone.decode() + 'b"}'
    assert duck_query(
        duckdb_path, f"SELECT file, line, reason, record FROM {DATASET}.t__rejected"
    ) == [("a.json", None, f"element 3: {LONE_SURROGATE}", record)]


def test_json_array_escaped_backslash_before_u_is_text(tmp_path: Path) -> None:
    """`"\\\\ud800"` (an escaped backslash, then `ud800`) and `"\\\\\\ud83d\\ude00"` (an escaped
    backslash, then a valid pair) are text, not lone surrogates: every element loads as
    written, `?` included, nothing rejected."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "a.json").write_bytes(
        b'[{"id":1,"s":"\\\\ud800 is text"},{"id":2,"s":"\\\\\\ud83d\\ude00"},{"id":3,"s":"?"}]'
    )
    duckdb_path = tmp_path / "w.duckdb"
    config = job_config(
        "local",
        duckdb_path,
        connection_params={"base_path": str(base)},
        file_pattern="*.json",
        file_format="json",
        dest_table_name="t",
    )

    result = run(JobConfig.parse(config))

    assert (result.rows_loaded, result.rows_rejected) == (3, 0)
    assert duck_query(duckdb_path, f"SELECT id, s FROM {DATASET}.t ORDER BY id") == [
        (1, "\\ud800 is text"),
        (2, "\\\U0001f600"),
        (3, "?"),
    ]
