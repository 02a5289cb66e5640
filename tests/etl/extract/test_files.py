"""Local file sources (etl/extract/files.py, etl/formats/, storage.py): nycflights13 as CSV, Parquet
and JSONL on disk, the file ledger, CSV options and malformed input. Expected values come from
the same tables in the real PostgreSQL (`pg_nycflights13`)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import BadInputError, JobConfig, run
from tests.conftest import NYCFLIGHTS13_CSV_OPTIONS, ROW_COUNTS, pg_connect
from tests.etl.extract.conftest import encode_table, nycflights13_csv_lines, read_nycflights13
from tests.etl.support import (
    DATASET,
    duck_count,
    duck_query,
    duck_table_exists,
    job_config,
    local_dir_job,
    run_cli,
)

pytestmark = pytest.mark.integration

FORMATS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


def _write(table: pa.Table, raw_csv: bytes | None, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_table(table, raw_csv, fmt))


@pytest.fixture(scope="module")
def nycflights13_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<root>/<format>/<table>.<ext>` for the five tables and `<root>/<format>/months/
    flights_MM.<ext>` (flights split by month) in CSV, Parquet and JSONL."""
    root = tmp_path_factory.mktemp("nycflights13_files")
    for table in ROW_COUNTS:
        data = read_nycflights13(table)
        header, lines = nycflights13_csv_lines(table)
        for fmt in FORMATS:
            _write(data, header + b"".join(lines), root / fmt / f"{table}.{fmt}", fmt)
        if table == "flights":
            months = data.column("month").to_pylist()
            for month in range(1, 13):
                part = data.filter(pa.compute.equal(data.column("month"), month))
                raw = header + b"".join(
                    line for line, m in zip(lines, months, strict=True) if m == month
                )
                for fmt in FORMATS:
                    _write(part, raw, root / fmt / "months" / f"flights_{month:02d}.{fmt}", fmt)
    return root


def _pg(sql: str, params: list[Any] | None = None) -> list[tuple]:
    with pg_connect() as connection:
        return connection.execute(sql, params).fetchall()


FLIGHT_FIGURES = (
    "count(*), count(tailnum), count(DISTINCT tailnum), sum(dep_delay), sum(arr_delay), "
    "min(time_hour), max(time_hour), sum(distance)"
)


def _flights_figures_in_pg(months: list[int]) -> tuple:
    return _pg(
        f"SELECT {FLIGHT_FIGURES} FROM nycflights13.flights WHERE month = ANY(%s)", [months]
    )[0]


def _flights_figures_in_duckdb(path: Path, table: str = "flights") -> tuple:
    return duck_query(path, f"SELECT {FLIGHT_FIGURES} FROM {DATASET}.{table}")[0]


def _file_job(root: Path, duckdb_path: Path, fmt: str, **fields: Any) -> JobConfig:
    if fmt == "csv":  # nycflights13's NULL marker, unless a test gives its own options
        fields.setdefault("file_format_options", NYCFLIGHTS13_CSV_OPTIONS)
    return local_dir_job(root, duckdb_path, fmt, **fields)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("table", list(ROW_COUNTS))
def test_first_run_loads_every_row(
    pg_nycflights13: str, nycflights13_files: Path, duckdb_path: Path, fmt: str, table: str
) -> None:
    """Each nycflights13 table as a file loads its exact row count, with per-column counts of
    values (NULLs from `NA`) equal to the same table in PostgreSQL."""
    job = _file_job(
        nycflights13_files,
        duckdb_path,
        fmt,
        file_prefix=fmt,
        file_pattern=f"{table}.{fmt}",
        dest_table_name=table,
    )

    result = run(job)

    assert (result.rows_loaded, result.files_loaded) == (
        ROW_COUNTS[table],
        [f"{fmt}/{table}.{fmt}"],
    )
    columns = [
        name
        for name, _ in _pg(
            "SELECT column_name, ordinal_position FROM information_schema.columns WHERE "
            "table_schema = 'nycflights13' AND table_name = %s AND column_name <> 'id' "
            "ORDER BY ordinal_position",
            [table],
        )
    ]
    counts = ", ".join(f'count("{name}")' for name in columns)
    expected = _pg(f"SELECT count(*), {counts} FROM nycflights13.{table}")[0]
    actual = duck_query(duckdb_path, f"SELECT count(*), {counts} FROM {DATASET}.{table}")[0]
    assert actual == expected
    assert duck_query(
        duckdb_path, f"SELECT count(DISTINCT _etl_source_file) FROM {DATASET}.{table}"
    ) == [(1,)]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_flights_values_and_time_zone(
    pg_nycflights13: str, nycflights13_files: Path, duckdb_path: Path, fmt: str
) -> None:
    """flights from a file has the same sums, distinct counts and `time_hour` instants as in
    PostgreSQL; `...Z` times load zone-aware (TIMESTAMP WITH TIME ZONE) in every format."""
    job = _file_job(
        nycflights13_files,
        duckdb_path,
        fmt,
        file_prefix=fmt,
        file_pattern=f"flights.{fmt}",
        dest_table_name="flights",
    )

    run(job)

    assert _flights_figures_in_duckdb(duckdb_path) == _flights_figures_in_pg(list(range(1, 13)))
    assert duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = 'flights' AND column_name = 'time_hour'",
        [DATASET],
    ) == [("TIMESTAMP WITH TIME ZONE",)]


def _copy_month(shared: Path, folder: Path, fmt: str, month: int) -> Path:
    name = f"flights_{month:02d}.{fmt}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes((shared / fmt / "months" / name).read_bytes())
    return folder / name


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_transactional_file_ledger(
    pg_nycflights13: str, nycflights13_files: Path, tmp_path: Path, duckdb_path: Path, fmt: str
) -> None:
    """Transactional file loads follow the ledger: the first run loads every file, a run with no
    change loads 0 rows, a new file loads only its rows, and an overwritten file's earlier rows
    are replaced by its new content, never duplicated."""
    folder = tmp_path / "files" / "months"
    for month in range(1, 12):
        _copy_month(nycflights13_files, folder, fmt, month)
    job = _file_job(
        tmp_path / "files",
        duckdb_path,
        fmt,
        file_prefix="months",
        file_pattern=f"*.{fmt}",
        dest_table_name="flights",
    )

    first = run(job)
    assert first.rows_loaded == _flights_figures_in_pg(list(range(1, 12)))[0]
    assert _flights_figures_in_duckdb(duckdb_path) == _flights_figures_in_pg(list(range(1, 12)))
    assert sorted(first.state.files) == [f"months/flights_{m:02d}.{fmt}" for m in range(1, 12)]

    unchanged = run(job, first.state)
    assert (unchanged.rows_loaded, unchanged.files_skipped, unchanged.files_loaded) == (0, 11, [])

    _copy_month(nycflights13_files, folder, fmt, 12)
    new_file = run(job, unchanged.state)
    december = _pg("SELECT count(*) FROM nycflights13.flights WHERE month = 12")[0][0]
    assert (new_file.rows_loaded, new_file.files_loaded) == (december, [f"months/flights_12.{fmt}"])
    assert _flights_figures_in_duckdb(duckdb_path) == _flights_figures_in_pg(list(range(1, 13)))

    # overwrite January with February's rows: January's rows go, February's appear twice
    january = folder / f"flights_01.{fmt}"
    january.write_bytes((folder / f"flights_02.{fmt}").read_bytes())
    os.utime(january, ns=(january.stat().st_atime_ns, january.stat().st_mtime_ns + 10**9))
    overwritten = run(job, new_file.state)

    february = _pg("SELECT count(*) FROM nycflights13.flights WHERE month = 2")[0][0]
    assert (overwritten.rows_loaded, overwritten.files_loaded) == (
        february,
        [f"months/flights_01.{fmt}"],
    )
    assert (
        duck_count(duckdb_path, "flights")
        == ROW_COUNTS["flights"]
        - _pg("SELECT count(*) FROM nycflights13.flights WHERE month = 1")[0][0]
        + february
    )
    assert duck_query(
        duckdb_path,
        f"SELECT DISTINCT month FROM {DATASET}.flights WHERE _etl_source_file = ?",
        [f"months/flights_01.{fmt}"],
    ) == [(2,)]
    assert run(job, overwritten.state).rows_loaded == 0


def test_catalog_files_replace_the_table(
    pg_nycflights13: str, nycflights13_files: Path, duckdb_path: Path
) -> None:
    """A catalog file load snapshots every matching file; the next catalog run replaces the
    table (no duplicates), and `catalog_files: latest` keeps only the newest file."""
    job = _file_job(
        nycflights13_files,
        duckdb_path,
        "parquet",
        file_prefix="parquet/months",
        file_pattern="*.parquet",
        load_type="catalog",
        dest_table_name="flights",
    )

    first = run(job)
    second = run(job, first.state)

    assert first.rows_loaded == second.rows_loaded == ROW_COUNTS["flights"]
    assert _flights_figures_in_duckdb(duckdb_path) == _flights_figures_in_pg(list(range(1, 13)))
    assert duck_query(duckdb_path, f"SELECT DISTINCT _etl_run_id FROM {DATASET}.flights") == [
        (second.run_id,)
    ]
    latest_path = nycflights13_files / "parquet" / "months" / "flights_07.parquet"
    os.utime(
        latest_path, ns=(latest_path.stat().st_atime_ns, latest_path.stat().st_mtime_ns + 10**12)
    )
    latest_options = {"catalog_files": "latest"}
    latest = _file_job(
        nycflights13_files,
        duckdb_path,
        "parquet",
        file_prefix="parquet/months",
        file_pattern="*.parquet",
        load_type="catalog",
        dest_table_name="flights",
        file_format_options=latest_options,
    )

    third = run(latest, second.state)

    assert third.files_loaded == ["parquet/months/flights_07.parquet"]
    assert _flights_figures_in_duckdb(duckdb_path) == _flights_figures_in_pg([7])


# --- CSV options on crafted files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "options", "expected"),
    [
        (
            "id;name;price\n1;Zoë;1,5\n2;André;NA\n".encode("latin-1"),
            {"delimiter": ";", "encoding": "latin-1", "null_values": ["", "NA"]},
            [{"id": 1, "name": "Zoë", "price": "1,5"}, {"id": 2, "name": "André", "price": None}],
        ),
        (
            b"7,alpha,2013-01-01T10:00:00Z\n8,beta,2013-12-31T23:59:59.000001Z\n",
            {"has_header": False},
            [
                {
                    "column_1": 7,
                    "column_2": "alpha",
                    "column_3": dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC),
                },
                {
                    "column_1": 8,
                    "column_2": "beta",
                    "column_3": dt.datetime(2013, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
                },
            ],
        ),
        (
            b"id|note\n1|'a|b'\n2|'it''s'\n3|'two\nlines'\n",
            {"delimiter": "|", "quote_char": "'", "allow_quoted_newlines": True},
            [{"id": 1, "note": "a|b"}, {"id": 2, "note": "it's"}, {"id": 3, "note": "two\nlines"}],
        ),
        (
            b"id,code\n1,-\n2,N/A\n3,x\n",
            {"null_values": ["-", "N/A"]},
            [{"id": 1, "code": None}, {"id": 2, "code": None}, {"id": 3, "code": "x"}],
        ),
        (
            b"# exported 2013\n# by hand\nid,v\n1,2.5\n",
            {"skip_rows": 2},
            [{"id": 1, "v": 2.5}],
        ),
    ],
    ids=["semicolon-latin1", "no-header", "pipe-single-quote", "null-values", "skip-rows"],
)
def test_csv_options(
    tmp_path: Path,
    duckdb_path: Path,
    content: bytes,
    options: dict[str, Any],
    expected: list[dict[str, Any]],
) -> None:
    """CSV `file_format_options` (delimiter, encoding, header, quote char, null values, skipped
    rows) give exactly the values written in the file."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes(content)
    job = _file_job(
        tmp_path / "in", duckdb_path, "csv", file_format_options=options, dest_table_name="crafted"
    )

    result = run(job)

    assert result.rows_loaded == len(expected)
    names = list(expected[0])
    rows = duck_query(
        duckdb_path,
        f"SELECT {', '.join(names)} FROM {DATASET}.crafted ORDER BY 1",
    )
    assert [dict(zip(names, row, strict=True)) for row in rows] == expected


# --- malformed input ---------------------------------------------------------------------------


def test_ragged_csv_row_fails_naming_file_and_line(
    pg_nycflights13: str, tmp_path: Path, duckdb_path: Path
) -> None:
    """A ragged row fails the run with BadInputError naming the file and the line; the good file
    read before it in the same run is not written, the table keeps its rows and the state file
    is unchanged."""
    base = tmp_path / "in"
    base.mkdir()
    header, lines = nycflights13_csv_lines("weather")
    (base / "a_weather.csv").write_bytes(header + b"".join(lines[:1000]))
    config = job_config(
        "local",
        duckdb_path,
        connection_params={"base_path": str(base)},
        file_format="csv",
        file_pattern="*.csv",
        dest_table_name="weather",
        file_format_options=NYCFLIGHTS13_CSV_OPTIONS,
    )
    state_path = tmp_path / "state.json"
    code, first = run_cli(config, state_path)
    assert (code, first["rows_loaded"]) == (0, 1000)
    state_before = state_path.read_bytes()

    (base / "b_weather.csv").write_bytes(header + b"".join(lines[1000:]))
    bad_lines = lines[:20_000] + [b"EWR,2013,1,1,1,39.02\n"] + lines[20_000:]
    (base / "c_bad.csv").write_bytes(header + b"".join(bad_lines))
    code, failed = run_cli(config, state_path)

    assert code == 1
    assert failed["error_class"] == "BadInputError"
    assert "file c_bad.csv" in failed["error"] and "line 20002" in failed["error"]
    assert "expected 15 fields, got 6" in failed["error"]
    assert state_path.read_bytes() == state_before
    assert duck_count(duckdb_path, "weather") == 1000
    with pytest.raises(BadInputError, match=r"file c_bad\.csv, line 20002\)"):
        run(JobConfig.parse(config), None)


def test_malformed_first_file_leaves_no_table(tmp_path: Path, duckdb_path: Path) -> None:
    """A malformed CSV in a first run fails with the file and line named and creates no table."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "bad.csv").write_bytes(b"a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n")
    job = _file_job(base, duckdb_path, "csv", dest_table_name="bad")

    with pytest.raises(BadInputError, match=r"file bad\.csv, line 4\): expected 3 fields, got 2"):
        run(job)

    assert not duck_table_exists(duckdb_path, "bad")


def test_wrong_encoding_fails_naming_the_file(tmp_path: Path, duckdb_path: Path) -> None:
    """Latin-1 bytes read as UTF-8 fail with the file named and the encoding option suggested."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "latin.csv").write_bytes("id,name\n1,Zoe\n2,Zoë\n".encode("latin-1"))
    job = _file_job(base, duckdb_path, "csv", dest_table_name="latin")

    with pytest.raises(
        BadInputError,
        match=r"file latin\.csv, line 3, column `name`\): text is not valid utf-8 .*encoding",
    ):
        run(job)

    assert not duck_table_exists(duckdb_path, "latin")


def test_invalid_jsonl_fails_naming_the_file(tmp_path: Path, duckdb_path: Path) -> None:
    """A JSONL file with a broken line fails with BadInputError naming the file."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "rows.jsonl").write_bytes(b'{"a": 1}\n{"a": 2\n{"a": 3}\n')
    job = _file_job(base, duckdb_path, "jsonl", dest_table_name="rows")

    with pytest.raises(BadInputError, match=r"file rows\.jsonl"):
        run(job)

    assert not duck_table_exists(duckdb_path, "rows")


def test_jsonl_times_keep_their_zone_semantics(tmp_path: Path, duckdb_path: Path) -> None:
    """In JSONL, ISO 8601 text ending in `Z` loads as a UTC instant and text without a zone as a
    wall clock; neither is shifted."""
    base = tmp_path / "in"
    base.mkdir()
    (base / "rows.jsonl").write_text(
        '{"id": 1, "utc": "2013-01-01T10:00:00Z", "wall": "2013-01-01T10:00:00"}\n'
        '{"id": 2, "utc": null, "wall": null}\n'
    )
    job = _file_job(base, duckdb_path, "jsonl", dest_table_name="rows")

    run(job)

    assert duck_query(duckdb_path, f"SELECT id, utc, wall FROM {DATASET}.rows ORDER BY id") == [
        (1, dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC), dt.datetime(2013, 1, 1, 10)),
        (2, None, None),
    ]


def test_json_array_file(tmp_path: Path, duckdb_path: Path) -> None:
    """A JSON array of objects loads one row per object with its values."""
    base = tmp_path / "in"
    base.mkdir()
    rows = [{"id": 1, "name": "a", "score": 1.25}, {"id": 2, "name": None, "score": -3.5}]
    (base / "rows.json").write_text(json.dumps(rows))
    job = _file_job(base, duckdb_path, "json", dest_table_name="rows")

    result = run(job)

    assert result.rows_loaded == 2
    assert duck_query(duckdb_path, f"SELECT id, name, score FROM {DATASET}.rows ORDER BY id") == [
        (1, "a", 1.25),
        (2, None, -3.5),
    ]
