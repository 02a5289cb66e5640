"""Real-world cases: compressed files (issue 17, item 1). Cloud cases run on the storage
emulators (`python scripts/emulators.py run -- ...`)."""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from etl import BadInputError, JobConfig, run
from tests.etl.extract.conftest import Bucket, file_job_config
from tests.etl.support import DATASET, duck_query, duck_table_exists
from tests.realworld.conftest import load_file

pytestmark = pytest.mark.integration

ORDERS = b'order_id,customer,total\n1001,ACME GmbH,19.99\n1002,"Smith, J",0.01\n1003,,250\n'
ORDERS_LOADED = [(1001, "ACME GmbH", 19.99), (1002, "Smith, J", 0.01), (1003, None, 250.0)]


def _cloud(bucket: Bucket, tmp_path: Path, fmt: str, **fields: object) -> list[tuple]:
    config = file_job_config(bucket, tmp_path / "w.duckdb", fmt, dest_table_name="t", **fields)
    result = run(JobConfig.parse(config))
    assert result.warnings == []
    return duck_query(
        tmp_path / "w.duckdb",
        f"SELECT * EXCLUDE (_etl_run_id, _etl_loaded_at, _etl_source_file) FROM {DATASET}.t ORDER BY 1",
    )


def test_gzip_csv_on_s3(make_bucket: Callable[[str], Bucket], tmp_path: Path) -> None:
    """Gzipped CSV exports in S3 are "a common pattern for storing CSV files in S3"; the Singer
    tap could not read them. Here `orders.csv.gz` on S3 loads its 3 rows exactly, typed
    BIGINT / VARCHAR / DOUBLE.

    Report: https://github.com/singer-io/tap-s3-csv/issues/26"""
    bucket = make_bucket("s3")
    bucket.put("exports/orders.csv.gz", gzip.compress(ORDERS))

    rows = _cloud(bucket, tmp_path, "csv", file_prefix="exports", file_pattern="*.csv.gz")

    assert rows == ORDERS_LOADED


def test_gzip_tsv_on_s3(make_bucket: Callable[[str], Bucket], tmp_path: Path) -> None:
    """The Airbyte S3 source was asked for `.gz` (and `.tsv`) support. A tab-separated
    `orders.tsv.gz` on S3 loads with `delimiter: "\\t"`, values exact.

    Report: https://github.com/airbytehq/airbyte/issues/17020"""
    bucket = make_bucket("s3")
    bucket.put(
        "orders.tsv.gz",
        gzip.compress(ORDERS.replace(b",", b"\t").replace(b'"Smith\t J"', b"Smith, J")),
    )

    rows = _cloud(
        bucket, tmp_path, "csv", file_pattern="*.tsv.gz", file_format_options={"delimiter": "\t"}
    )

    assert rows == ORDERS_LOADED


def test_bzip2_csv_on_gcs(make_bucket: Callable[[str], Bucket], tmp_path: Path) -> None:
    """Airbyte's GCS source added gzip and bzip support. A `.csv.bz2` object on GCS loads its
    rows exactly.

    Report: https://github.com/airbytehq/airbyte/pull/36373"""
    bucket = make_bucket("gcs")
    bucket.put("orders.csv.bz2", bz2.compress(ORDERS))

    assert _cloud(bucket, tmp_path, "csv", file_pattern="*.bz2") == ORDERS_LOADED


def test_gzip_csv_on_azure_blob(make_bucket: Callable[[str], Bucket], tmp_path: Path) -> None:
    """Airbyte's File source failed its check on a gzipped CSV ("can't be parsed with reader of
    chosen type (csv)") although `compression: gzip` was set. A gzip CSV in Azure Blob loads with
    no option at all.

    Report: https://github.com/airbytehq/airbyte/issues/21573"""
    bucket = make_bucket("azure_blob")
    bucket.put("daily/orders.csv.gz", gzip.compress(ORDERS))

    assert _cloud(bucket, tmp_path, "csv", file_pattern="daily/*") == ORDERS_LOADED


def test_gzip_file_without_gz_suffix_is_not_read_as_text(tmp_path: Path) -> None:
    """csv2parquet read a gzip TSV as text and failed with "invalid utf-8 ... in field 0". A
    gzip file named `fragments.tsv` is found by its magic bytes and loads its rows.

    Report: https://github.com/domoritz/arrow-tools/issues/116"""
    content = gzip.compress(b"chrom\tstart\tend\nchr1\t10\t20\nchr2\t30\t45\n")

    loaded = load_file(
        tmp_path, "fragments.tsv", content, "csv", file_format_options={"delimiter": "\t"}
    )

    assert loaded.rows('chrom, start, "end"') == [("chr1", 10, 20), ("chr2", 30, 45)]
    assert loaded.types() == {"chrom": "VARCHAR", "start": "BIGINT", "end": "BIGINT"}
    assert loaded.result.warnings == []


def test_zstd_jsonl_detected_by_magic_bytes(tmp_path: Path) -> None:
    """Polars was asked to detect compressed input "preferably by magic bytes". A zstd JSONL
    file with no suffix (`events`) loads its 2 records exactly.

    Report: https://github.com/pola-rs/polars/issues/773"""
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(b'{"id":1,"kind":"click","ms":12.5}\n{"id":2,"kind":"view","ms":null}\n')

    loaded = load_file(tmp_path, "events", sink.getvalue().to_pybytes(), "jsonl")

    assert loaded.rows("id, kind, ms") == [(1, "click", 12.5), (2, "view", None)]
    assert loaded.types() == {"id": "BIGINT", "kind": "VARCHAR", "ms": "DOUBLE"}


def test_truncated_gzip_fails_instead_of_loading_part_of_it(tmp_path: Path) -> None:
    """cmdstanr's reviewers found that a truncated archive "can produce part of the CSV before
    the decompressor fails" and be read as complete. A gzip CSV cut short fails the run naming
    the file and gzip's reason; nothing is written.

    Report: https://github.com/stan-dev/cmdstanr/pull/1217"""
    rows = b"".join(b"%d,%d\n" % (n, n * n) for n in range(1, 20_001))
    content = gzip.compress(b"n,square\n" + rows)

    with pytest.raises(
        BadInputError,
        match=r"\(file draws\.csv\.gz\): cannot decode the gzip data \(Compressed file ended "
        r"before the end-of-stream marker was reached\)",
    ):
        load_file(tmp_path, "draws.csv.gz", content[: len(content) // 2], "csv")

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


def test_compressed_pipe_delimited_file_with_multiline_rows(tmp_path: Path) -> None:
    """A compressed, `|`-delimited file whose quoted values span lines failed to load through
    the BigQuery Python client. Here it loads with no option beyond the delimiter, the line
    breaks kept.

    Report: https://github.com/googleapis/python-bigquery/issues/1425"""
    content = gzip.compress(
        b'id|comment|score\n1|"first line\nsecond line"|3\n2|"a | b"|4\n3|plain|\n'
    )

    loaded = load_file(
        tmp_path, "export.gz", content, "csv", file_format_options={"delimiter": "|"}
    )

    assert loaded.rows("id, comment, score") == [
        (1, "first line\nsecond line", 3),
        (2, "a | b", 4),
        (3, "plain", None),
    ]
    assert (loaded.result.rows_loaded, loaded.result.warnings) == (3, [])


def test_gzip_json_array_file(tmp_path: Path) -> None:
    """The Airbyte low-code request for a gzip decoder: a gzip JSON array (an API dump) loads
    its objects exactly, nested objects as STRUCT.

    Report: https://github.com/airbytehq/airbyte/issues/12973"""
    records = [
        {"id": 1, "user": {"name": "a", "age": 30}},
        {"id": 2, "user": {"name": "b", "age": None}},
    ]

    loaded = load_file(
        tmp_path, "dump.json.gz", gzip.compress(json.dumps(records).encode()), "json"
    )

    assert loaded.rows('id, "user"') == [
        (1, {"name": "a", "age": 30}),
        (2, {"name": "b", "age": None}),
    ]
    assert loaded.types() == {"id": "BIGINT", "user": 'STRUCT("name" VARCHAR, age BIGINT)'}
