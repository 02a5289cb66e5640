"""Compressed CSV, JSON and JSONL files (etl/formats/compression.py; issue 17, item 1): gzip,
zstd, bz2 and xz, found by their magic bytes whatever the name and by the name, read as a
stream, from local disk and from the S3, GCS and Azure Blob emulators. A file that cannot be
decoded fails naming the file and the decoder's reason, and is never recorded as processed.
Run the cloud cases under `python scripts/emulators.py run -- ...` (as `make test` does)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl import BadInputError, JobConfig, SyncState, run
from tests.etl.extract.conftest import Bucket, file_job_config
from tests.etl.support import DATASET, duck_query, duck_table_exists, local_file_job

ROWS = [
    {"id": 1, "name": 'caf\u00e9, "au lait"', "amount": 1.25},
    {"id": 2, "name": "line\nbreak", "amount": None},
    {"id": 3, "name": "plain", "amount": -7.5},
]
LOADED = [(1, 'caf\u00e9, "au lait"', 1.25), (2, "line\nbreak", None), (3, "plain", -7.5)]
CONTENT = {
    "csv": 'id,name,amount\n1,"caf\u00e9, ""au lait""",1.25\n2,"line\nbreak",\n3,plain,-7.5\n'.encode(),
    "jsonl": "".join(json.dumps(row) + "\n" for row in ROWS).encode(),
    "json": json.dumps(ROWS).encode(),
}


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


CODECS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": (".gz", gzip.compress),
    "zstd": (".zst", zstd),
    "bz2": (".bz2", bz2.compress),
    "xz": (".xz", lzma.compress),
}


def _rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    return duck_query(
        tmp_path / "w.duckdb", f"SELECT id, name, amount FROM {DATASET}.t ORDER BY id"
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("named", [True, False], ids=["by-name", "by-magic-bytes"])
def test_compressed_file_loads_exactly(tmp_path: Path, codec: str, fmt: str, named: bool) -> None:
    """A `codec`-compressed file loads the same 3 rows as the plain file, whether its name
    ends in the codec's suffix (`t.csv.gz`) or not (`t.csv`: found by its magic bytes)."""
    suffix, compress = CODECS[codec]
    name = f"t.{fmt}{suffix if named else ''}"
    config = local_file_job(tmp_path, name, compress(CONTENT[fmt]), fmt)

    result = run(JobConfig.parse(config))

    assert (result.rows_loaded, result.files_loaded, result.warnings) == (3, [name], [])
    assert _rows(tmp_path) == LOADED
    assert result.state.files[name].rows == 3


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "t.csv.gz",
            gzip.compress(CONTENT["csv"])[:-9],
            r"cannot decode the gzip data \(Compressed file ended before the end-of-stream "
            r"marker was reached\)",
        ),
        ("t.csv.bz2", b"BZh91AY&SY" + b"\x00" * 40, r"cannot decode the bz2 data \(Invalid data"),
        ("t.jsonl.xz", lzma.compress(CONTENT["jsonl"])[:30], r"cannot decode the xz data \("),
        (
            "t.csv.gz",
            CONTENT["csv"],
            r"the name says gzip but the file holds data starting with b'id,nam'",
        ),
    ],
    ids=["truncated-gzip", "corrupt-bz2", "truncated-xz", "named-gz-but-plain"],
)
def test_undecodable_file_fails_naming_it_and_is_not_recorded(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    """A file that does not decode fails the run naming the file and the decoder's own reason;
    nothing is written and the file is not in the ledger of any state."""
    fmt = "jsonl" if ".jsonl" in name else "csv"
    config = local_file_job(tmp_path, name, content, fmt)

    with pytest.raises(BadInputError, match=rf"\(file {re.escape(name)}\): {reason}"):
        run(JobConfig.parse(config), SyncState())

    assert not duck_table_exists(tmp_path / "w.duckdb", "t")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("codec", "fmt"), [("gzip", "csv"), ("zstd", "jsonl"), ("bz2", "json"), ("xz", "csv")]
)
def test_compressed_objects_load_from_every_store(
    bucket: Bucket, tmp_path: Path, codec: str, fmt: str
) -> None:
    """The same compressed objects on S3, GCS and Azure Blob (one named with its suffix, one
    without) load 6 rows exactly; a second run skips both."""
    suffix, compress = CODECS[codec]
    bucket.put(f"in/a.{fmt}{suffix}", compress(CONTENT[fmt]))
    bucket.put(f"in/b.{fmt}", compress(CONTENT[fmt]))
    config = file_job_config(
        bucket, tmp_path / "w.duckdb", fmt, file_prefix="in", file_pattern="*", dest_table_name="t"
    )

    first = run(JobConfig.parse(config))
    second = run(JobConfig.parse(config), first.state)

    assert (first.rows_loaded, sorted(first.files_loaded)) == (
        6,
        [f"in/a.{fmt}{suffix}", f"in/b.{fmt}"],
    )
    assert (second.rows_loaded, second.files_skipped) == (0, 2)
    assert duck_query(
        tmp_path / "w.duckdb",
        f"SELECT _etl_source_file, id, name, amount FROM {DATASET}.t ORDER BY 1, 2",
    ) == [(key, *row) for key in (f"in/a.{fmt}{suffix}", f"in/b.{fmt}") for row in LOADED]


def test_large_gzip_csv_streams(tmp_path: Path) -> None:
    """A gzip CSV of 400,000 rows (~11 MB of text) loads every row with exact figures: the
    decompressed bytes are streamed block by block."""
    lines = b"".join(b"%d,name %d,%d.5\n" % (n, n, n) for n in range(1, 400_001))
    config = local_file_job(
        tmp_path, "big.csv.gz", gzip.compress(b"id,name,amount\n" + lines), "csv"
    )

    result = run(JobConfig.parse(config))

    assert result.rows_loaded == 400_000
    assert duck_query(
        tmp_path / "w.duckdb", f"SELECT count(*), sum(id), sum(amount) FROM {DATASET}.t"
    ) == [(400_000, 80_000_200_000, 80_000_400_000.0)]
