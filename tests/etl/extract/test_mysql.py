"""MySQL/MariaDB extractor against the real MariaDB: DATETIME(6) and TIMESTAMP(6) cursors,
quoted identifiers, custom SQL and selected columns; the connectorx transport (native columns
exact, UTC session, inlined cursor bounds of every cursor type, batch size, secrets)."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl import JobConfig, SyncState, Watermark, run
from etl.exceptions import SourceAuthError
from etl.registry import get_extractor
from tests.conftest import MYSQL_PARAMS, mysql_connect
from tests.etl.support import DATASET, duck_query, job_config

pytestmark = pytest.mark.integration


def _execute(database: str, sql: str, params: tuple = (), *, time_zone: str = "+00:00") -> list:
    connection = mysql_connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET time_zone = '{time_zone}'")
            cursor.execute(sql, params or None)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _create_events(database: str) -> None:
    _execute(
        database,
        "CREATE TABLE events (id INT PRIMARY KEY, dt DATETIME(6), ts TIMESTAMP(6) NULL, "
        "note VARCHAR(40))",
    )


def _insert_events(database: str, rows: list[tuple[int, str]]) -> None:
    """Insert `(id, wall clock)` rows from a session at +05:30: `dt` keeps the wall clock,
    `ts` stores the instant the wall clock means at +05:30."""
    for id_, text in rows:
        _execute(
            database,
            "INSERT INTO events VALUES (%s, %s, %s, %s)",
            (id_, text, text, text),
            time_zone="+05:30",
        )


def test_datetime6_cursor_keeps_microseconds_in_the_watermark(
    mysql_nycflights13: str, mysql_database: str, duckdb_path: Path
) -> None:
    """A DATETIME(6) cursor's watermark keeps microseconds, so rows a fraction of a second below
    it are not read again, and a new row tied with it is loaded once."""
    _create_events(mysql_database)
    _insert_events(
        mysql_database,
        [
            (1, "2013-06-01 12:34:55.000001"),
            (2, "2013-06-01 12:34:56.500000"),
            (3, "2013-06-01 12:34:56.999999"),
        ],
    )
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=f"{mysql_database}.events",
            load_type="transactional",
            timestamp_column="dt",
            primary_key=["id"],
            dest_table_name="events",
        )
    )

    first = run(job)

    assert first.rows_loaded == 3
    assert first.state.watermark == Watermark(value="2013-06-01T12:34:56.999999", type="timestamp")
    assert duck_query(duckdb_path, f"SELECT id, dt FROM {DATASET}.events ORDER BY id") == [
        (1, dt.datetime(2013, 6, 1, 12, 34, 55, 1)),
        (2, dt.datetime(2013, 6, 1, 12, 34, 56, 500000)),
        (3, dt.datetime(2013, 6, 1, 12, 34, 56, 999999)),
    ]

    _insert_events(
        mysql_database, [(4, "2013-06-01 12:34:56.999999"), (5, "2013-06-01 12:34:57.000000")]
    )
    second = run(job, first.state)

    assert second.rows_loaded == 2
    assert second.rows_skipped == 1
    assert duck_query(
        duckdb_path,
        f"SELECT id FROM {DATASET}.events WHERE _etl_run_id = ? ORDER BY id",
        [second.run_id],
    ) == [(4,), (5,)]
    assert second.state.watermark == Watermark(value="2013-06-01T12:34:57.000000", type="timestamp")


def test_timestamp6_cursor_is_a_utc_instant_whatever_the_writer_zone(
    mysql_nycflights13: str, mysql_database: str, duckdb_path: Path
) -> None:
    """TIMESTAMP(6) values written from a +05:30 session load as the same UTC instants (zone-aware
    column) and the watermark is that instant with microseconds."""
    _create_events(mysql_database)
    _insert_events(
        mysql_database, [(1, "2013-06-01 12:34:56.123456"), (2, "2014-01-01 05:30:00.000001")]
    )
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=f"{mysql_database}.events",
            load_type="transactional",
            timestamp_column="ts",
            primary_key=["id"],
            dest_table_name="events",
        )
    )

    result = run(job)

    utc_rows = _execute(mysql_database, "SELECT id, ts FROM events ORDER BY id")
    assert utc_rows[0][1] == dt.datetime(2013, 6, 1, 7, 4, 56, 123456)
    loaded = duck_query(duckdb_path, f"SELECT id, ts FROM {DATASET}.events ORDER BY id")
    assert loaded == [(id_, ts.replace(tzinfo=dt.UTC)) for id_, ts in utc_rows]
    assert duck_query(
        duckdb_path,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'events' AND column_name = 'ts'",
        [DATASET],
    ) == [("TIMESTAMP WITH TIME ZONE",)]
    assert result.state.watermark == Watermark(
        value="2014-01-01T00:00:00.000001+00:00", type="timestamptz"
    )


@pytest.fixture
def quoted_table(mysql_nycflights13: str, mysql_database: str) -> str:
    """A table whose name and columns need backtick quoting (spaces, backticks, mixed case, a
    keyword), holding five nycflights13 flights; returns the `source_table_name`."""
    _execute(
        mysql_database,
        "CREATE TABLE `Flight ``Log`` 2013` (`Flight ID` INT PRIMARY KEY, `CarrierName` "
        "VARCHAR(10), `dep ``delay``` INT, `select` INT, `Time Hour` DATETIME(6))",
    )
    _execute(
        mysql_database,
        "INSERT INTO `Flight ``Log`` 2013` SELECT id, carrier, dep_delay, distance, time_hour "
        "FROM nycflights13.flights WHERE id IN (1, 2, 3, 838, 336776)",
    )
    return f"{mysql_database}.Flight `Log` 2013"


def _expected(database: str, select: str, where: str = "") -> list[tuple]:
    return [
        tuple(row)
        for row in _execute(
            database, f"SELECT {select} FROM `Flight ``Log`` 2013` {where} ORDER BY 1"
        )
    ]


def test_quoted_identifiers_table_and_columns(
    quoted_table: str, mysql_database: str, duckdb_path: Path
) -> None:
    """A table and columns with spaces, backticks, mixed case and a keyword are read (cursor and
    primary key included) and land under BigQuery-valid names."""
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=quoted_table,
            load_type="transactional",
            timestamp_column="Time Hour",
            primary_key=["Flight ID"],
            dest_table_name="log",
        )
    )

    first = run(job)
    second = run(job, first.state)

    assert (first.rows_loaded, second.rows_loaded) == (5, 0)
    assert first.state.column_map == {
        "Flight ID": "flight_id",
        "CarrierName": "carriername",
        "dep `delay`": "dep_delay",
        "select": "select",
        "Time Hour": "time_hour",
    }
    assert duck_query(
        duckdb_path,
        f'SELECT flight_id, carriername, dep_delay, "select", time_hour FROM {DATASET}.log '
        "ORDER BY 1",
    ) == _expected(
        mysql_database, "`Flight ID`, `CarrierName`, `dep ``delay```, `select`, `Time Hour`"
    )


def test_selected_columns_and_custom_sql(
    quoted_table: str, mysql_database: str, duckdb_path: Path
) -> None:
    """`selected_columns` with quoted names keep only those columns in order; `custom_sql` is
    extracted as a derived table with its aliases as columns."""
    selected = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=quoted_table,
            load_type="catalog",
            selected_columns=["dep `delay`", "Flight ID"],
            dest_table_name="selected",
        )
    )
    custom = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            load_type="catalog",
            dest_table_name="custom",
            custom_sql="SELECT `Flight ID` AS `Id`, UPPER(`CarrierName`) AS `Carrier Upper` "
            f"FROM `{mysql_database}`.`Flight ``Log`` 2013` WHERE `select` > 1000",
        )
    )

    selected_result = run(selected)
    custom_result = run(custom)

    assert [c["name"] for c in selected_result.schema_] == [
        "dep_delay",
        "flight_id",
        "_etl_run_id",
        "_etl_loaded_at",
    ]
    assert duck_query(
        duckdb_path, f"SELECT flight_id, dep_delay FROM {DATASET}.selected ORDER BY 1"
    ) == _expected(mysql_database, "`Flight ID`, `dep ``delay```")
    expected_custom = _expected(
        mysql_database, "`Flight ID`, UPPER(`CarrierName`)", "WHERE `select` > 1000"
    )
    assert custom_result.rows_loaded == len(expected_custom) > 0
    assert (
        duck_query(duckdb_path, f"SELECT id, carrier_upper FROM {DATASET}.custom ORDER BY 1")
        == expected_custom
    )


def _f32(value: float) -> float:
    """The float32 nearest `value`, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


FLOATS = [3.4028234663852886e38, 1.0000001192092896, 1.401298464324817e-45, -0.1, 16777217.0]
"""FLOAT values whose float32 needs 7-9 significant digits (FLT_MAX, 1 + 2^-23, the smallest
subnormal) or that float32 rounds (-0.1, 2^24 + 1)."""


def test_native_columns_arrive_exact(mysql_database: str, duckdb_path: Path) -> None:
    """The columns connectorx decodes natively keep every value exactly: FLOAT's 4 bytes (no
    6-digit text rounding), DOUBLE, tinyint(1) as an integer, unsigned and YEAR extremes, TIME
    beyond 24 h and below zero, BIT(64), latin1 and 4-byte UTF-8 text, binary-collated text as
    text and binary strings as bytes."""
    _execute(
        mysql_database,
        "CREATE TABLE native (id INT PRIMARY KEY, f FLOAT, d DOUBLE, flag TINYINT(1), "
        "tu TINYINT UNSIGNED, bu BIGINT UNSIGNED, yr YEAR, tm TIME(6), b64 BIT(64), "
        "l1 VARCHAR(10) CHARACTER SET latin1, u8 VARCHAR(10), vbin VARCHAR(10) COLLATE utf8mb4_bin, "
        "vb VARBINARY(10))",
    )
    rows = [
        (
            1,
            FLOATS[0],
            1.7976931348623157e308,
            2,
            255,
            2**64 - 1,
            2155,
            "838:59:59.999999",
            2**64 - 1,
            "déjà",
            "😀 ☃",
            "Bin",
            b"\x00\xff",
        ),
        (2, FLOATS[1], 5e-324, 127, 0, 0, 1901, "-838:59:59.999999", 0, "", "", "", b""),
        (3, FLOATS[2], -0.0, -128, 1, 1, 0, "-00:00:00.000001", 1, "ÿ", "ä", "b", b"a"),
        (4, FLOATS[3], 0.1, 0, 2, 2, 2000, "00:00:00", 2, "a", "a", "a", b"\x00"),
        (5, FLOATS[4], -1.0, 1, 3, 3, 2001, "24:00:00.000001", 3, "b", "b", "c", b"b"),
        (6, None, None, None, None, None, None, None, None, None, None, None, None),
    ]
    for row in rows:
        _execute(mysql_database, f"INSERT INTO native VALUES ({', '.join(['%s'] * 13)})", row)
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=f"{mysql_database}.native",
            load_type="catalog",
            dest_table_name="native",
        )
    )

    result = run(job)

    assert result.rows_loaded == 6
    loaded = duck_query(
        duckdb_path,
        f"SELECT id, f, d, flag, tu, bu, yr, tm, b64, l1, u8, vbin, vb FROM {DATASET}.native "
        "ORDER BY id",
    )
    us = dt.timedelta(microseconds=1)
    assert loaded == [
        (
            1,
            _f32(FLOATS[0]),
            1.7976931348623157e308,
            2,
            255,
            2**64 - 1,
            2155,
            dt.timedelta(hours=839) - us,
            2**64 - 1,
            "déjà",
            "😀 ☃",
            "Bin",
            b"\x00\xff",
        ),
        (
            2,
            _f32(FLOATS[1]),
            5e-324,
            127,
            0,
            0,
            1901,
            -(dt.timedelta(hours=839) - us),
            0,
            "",
            "",
            "",
            b"",
        ),
        (3, _f32(FLOATS[2]), -0.0, -128, 1, 1, 0, -us, 1, "ÿ", "ä", "b", b"a"),
        (4, _f32(FLOATS[3]), 0.1, 0, 2, 2, 2000, dt.timedelta(0), 2, "a", "a", "a", b"\x00"),
        (
            5,
            _f32(FLOATS[4]),
            -1.0,
            1,
            3,
            3,
            2001,
            dt.timedelta(hours=24) + us,
            3,
            "b",
            "b",
            "c",
            b"b",
        ),
        (6, None, None, None, None, None, None, None, None, None, None, None, None),
    ]
    assert _f32(FLOATS[0]) == FLOATS[0] and _f32(FLOATS[3]) != -0.1  # float32 values, exactly
    assert duck_query(
        duckdb_path,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = 'native' AND column_name IN ('f', 'flag', 'tu', 'bu', 'yr', 'tm', "
        "'b64', 'vbin', 'vb') ORDER BY ordinal_position",
        [DATASET],
    ) == [
        ("f", "FLOAT"),
        ("flag", "TINYINT"),
        ("tu", "SMALLINT"),
        ("bu", "UBIGINT"),
        ("yr", "SMALLINT"),
        ("tm", "INTERVAL"),
        ("b64", "UBIGINT"),
        ("vbin", "VARCHAR"),
        ("vb", "BLOB"),
    ]


def test_stream_session_is_utc(mysql_database: str, duckdb_path: Path) -> None:
    """The connection that streams the rows runs with time_zone +00:00 (whatever the server's
    default), so TIMESTAMP text is the UTC instant."""
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            load_type="catalog",
            dest_table_name="session",
            custom_sql="SELECT @@session.time_zone AS tz, FROM_UNIXTIME(1370089496.123456) AS ts",
        )
    )

    run(job)

    assert duck_query(duckdb_path, f"SELECT tz, ts FROM {DATASET}.session") == [
        ("+00:00", dt.datetime(2013, 6, 1, 12, 24, 56, 123456))
    ]


CURSOR_CASES = [
    pytest.param(
        "DATETIME(6)",
        ["2013-06-01 12:34:56.000001", "2013-06-01 12:34:56.000002", "2013-06-01 12:34:56.000003"],
        Watermark(value="2013-06-01T12:34:56.000002", type="timestamp"),
        id="datetime6",
    ),
    pytest.param(
        "TIMESTAMP(6) NULL",
        ["2013-06-01 12:34:56.000001", "2013-06-01 12:34:56.000002", "2013-06-01 12:34:56.000003"],
        Watermark(value="2013-06-01T07:04:56.000002+00:00", type="timestamptz"),
        id="timestamp6",
    ),
    pytest.param(
        "DATE",
        ["2013-06-01", "2013-06-02", "2013-06-03"],
        Watermark(value="2013-06-02", type="date"),
        id="date",
    ),
    pytest.param(
        "DECIMAL(12,4)",
        ["1.0001", "1.0002", "1.0003"],
        Watermark(value="1.0002", type="decimal"),
        id="decimal",
    ),
    pytest.param(
        "BIGINT UNSIGNED",
        ["18446744073709551613", "18446744073709551614", "18446744073709551615"],
        Watermark(value="18446744073709551614", type="integer"),
        id="bigint-unsigned",
    ),
]


@pytest.mark.parametrize(("kind", "values", "watermark"), CURSOR_CASES)
def test_cursor_bounds_are_inlined_exactly(
    mysql_database: str, duckdb_path: Path, kind: str, values: list[str], watermark: Watermark
) -> None:
    """Cursor bounds reach the streamed query as typed literals that compare exactly with the
    column (microseconds, UTC instants written from a +05:30 session, decimals, 2^64-1): the
    second run loads the row tied with the watermark and the one above it, nothing else."""
    _execute(mysql_database, f"CREATE TABLE c (id INT PRIMARY KEY, cur {kind})")

    def insert(rows: list[tuple[int, str]]) -> None:
        for row in rows:
            _execute(mysql_database, "INSERT INTO c VALUES (%s, %s)", row, time_zone="+05:30")

    insert([(1, values[0]), (2, values[1])])
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name=f"{mysql_database}.c",
            load_type="transactional",
            timestamp_column="cur",
            primary_key=["id"],
            dest_table_name="c",
        )
    )

    first = run(job)
    insert([(3, values[1]), (4, values[2])])
    second = run(job, first.state)

    assert first.state.watermark == watermark
    assert (first.rows_loaded, second.rows_loaded, second.rows_skipped) == (2, 2, 1)
    assert duck_query(
        duckdb_path,
        f"SELECT id FROM {DATASET}.c WHERE _etl_run_id = ? ORDER BY id",
        [second.run_id],
    ) == [(3,), (4,)]


def test_batches_hold_at_most_chunk_size_rows(mysql_nycflights13: str, duckdb_path: Path) -> None:
    """connectorx streams the table in batches of `chunk_size` rows (the last one shorter),
    every row once."""
    job = JobConfig.parse(
        job_config(
            "mysql",
            duckdb_path,
            source_table_name="nycflights13.flights",
            load_type="catalog",
            selected_columns=["id", "time_hour"],
            chunk_size=7_000,
        )
    )

    with get_extractor("mysql")(job).extract(SyncState()) as extraction:
        sizes, total = [], 0
        for batch in extraction.batches():
            sizes.append(batch.num_rows)
            total += sum(batch.column("id").to_pylist())

    assert sizes == [7_000] * 48 + [776]
    expected = _execute("nycflights13", "SELECT SUM(id) FROM flights")[0][0]
    assert total == expected


SECRET = "S3cr#t/p@ss:w%rd"
"""A password with every character a URL must percent-encode."""


@pytest.fixture
def mysql_user(mysql_database: str) -> Iterator[str]:
    """A user `etl_<hex>` with password SECRET and SELECT on the test database; dropped after."""
    user = f"etl_{uuid.uuid4().hex[:10]}"
    _execute(mysql_database, f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (SECRET,))
    _execute(mysql_database, f"GRANT SELECT ON `{mysql_database}`.* TO '{user}'@'%'")
    try:
        yield user
    finally:
        _execute(mysql_database, f"DROP USER IF EXISTS '{user}'@'%'")


def _user_job(database: str, duckdb_path: Path, user: str, password: str) -> JobConfig:
    return JobConfig.parse(
        {
            **job_config(
                "mysql",
                duckdb_path,
                load_type="catalog",
                dest_table_name="t",
                source_table_name=f"{database}.t",
            ),
            "connection_params": {
                **MYSQL_PARAMS,
                "database": database,
                "user": user,
                "password": password,
            },
        }
    )


def test_password_is_url_encoded_and_never_shown(
    mysql_database: str, mysql_user: str, duckdb_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A password with URL characters (`#/@:%`) reaches connectorx intact; when connectorx is
    refused (the password changed after the snapshot opened), the run fails with
    SourceAuthError, and neither the error, its chain nor anything printed holds the secret."""
    _execute(mysql_database, "CREATE TABLE t (id INT PRIMARY KEY)")
    _execute(mysql_database, "INSERT INTO t VALUES (1), (2)")

    assert run(_user_job(mysql_database, duckdb_path, mysql_user, SECRET)).rows_loaded == 2

    extractor = get_extractor("mysql")(_user_job(mysql_database, duckdb_path, mysql_user, SECRET))
    connection = extractor.connect()
    try:
        _execute(mysql_database, f"ALTER USER '{mysql_user}'@'%' IDENTIFIED BY 'rotated'")
        with pytest.raises(SourceAuthError, match=r"\(1045\) Access denied for user") as caught:
            try:
                extractor.stream(connection, f"SELECT id FROM `{mysql_database}`.t", [])
            except Exception as exc:
                raise extractor.translate_error(exc) or exc from exc
    finally:
        connection.close()

    chain, error = [], caught.value
    while error is not None:
        chain.append(f"{error!s} {error!r}")
        error = error.__cause__ or error.__context__
    printed = capfd.readouterr()
    for text in [*chain, printed.out, printed.err]:
        assert SECRET not in text and "S3cr%23t" not in text
