"""fsspec filesystems of the file sources: `local`, `s3` (s3fs), `gcs` (gcsfs) and `azure_blob`
(adlfs), built from a job's `connection_params`; each store library is imported only here, when
its source is used."""

from __future__ import annotations

import json
import os
from typing import Any

import fsspec

from etl.exceptions import ConfigError, MissingDependencyError
from etl.extract.listing import FileSource
from etl.extract.storage_errors import first_line, redact

READ_BLOCK_SIZE = 8 << 20
"""Bytes fetched per ranged read from object stores: memory per open file stays near this."""


GCS_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


def open_filesystem(job: FileSource) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the job's filesystem and the root path every key is relative to.

    `local`: `base_path`; `s3`: the bucket (s3fs); `gcs`: the bucket (gcsfs); `azure_blob`: the
    container (adlfs). Credentials come from `connection_params` (DESIGN.md §4); an optional
    `endpoint_url` points at an S3-compatible store or an emulator.

    Raises:
        ConfigError: `base_path` does not exist (local), or credentials are incomplete.
        MissingDependencyError: the filesystem package is not installed.
    """
    params = job.connection_params
    kind = job.source_type
    if kind == "local":
        root = os.path.realpath(os.path.expanduser(params["base_path"]))
        if not os.path.isdir(root):
            raise ConfigError(
                f"connection_params.base_path {params['base_path']!r} is not a directory",
                field="connection_params.base_path",
            )
        return fsspec.filesystem("file"), root
    if kind == "s3":
        return _s3(params), params["bucket"].strip("/")
    if kind == "gcs":
        return _gcs(params), params["bucket"].strip("/")
    if kind == "azure_blob":
        return _azure(params), params["container"].strip("/")
    raise ConfigError(f"source_type {kind} is not a file source", field="source_type")


def _s3(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    try:
        import s3fs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("s3fs[boto3]", "The s3 source") from exc
    key, secret = params.get("aws_access_key_id"), params.get("aws_secret_access_key")
    if bool(key) != bool(secret):
        raise ConfigError(
            "give both aws_access_key_id and aws_secret_access_key, or neither (default chain)",
            field="connection_params.aws_secret_access_key",
        )
    client_kwargs = {"region_name": params.get("region") or None}
    if params.get("endpoint_url"):
        client_kwargs["endpoint_url"] = params["endpoint_url"]
    return s3fs.S3FileSystem(
        key=key or None,
        secret=secret or None,
        token=params.get("aws_session_token") or None,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
        default_block_size=READ_BLOCK_SIZE,
    )


def _gcs(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    # gcsfs 2026.x probes a gRPC endpoint for hierarchical-namespace buckets on every call
    # unless this is off; an emulator (or a firewall) makes each probe wait 60 s.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        import gcsfs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("gcsfs", "The gcs source") from exc
    credentials = params.get("credentials")
    if credentials == "anonymous":
        token: Any = "anon"
    elif credentials is None:
        token = "google_default"
    elif isinstance(credentials, (dict, str)):
        try:
            token = json.loads(credentials) if isinstance(credentials, str) else credentials
        except ValueError:
            raise ConfigError(
                'credentials must be a service-account JSON object, null or "anonymous"',
                field="connection_params.credentials",
            ) from None  # the text is a secret: never chained into tracebacks
        from google.oauth2 import service_account

        # built here, not by gcsfs: it hides a malformed key behind a KeyError('refresh_token')
        try:
            token = service_account.Credentials.from_service_account_info(
                token, scopes=[GCS_READ_SCOPE]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                "credentials are not a valid service-account JSON key "
                f"({redact(first_line(exc), params)})",
                field="connection_params.credentials",
            ) from exc
    else:
        raise ConfigError(
            'credentials must be a service-account JSON object, null or "anonymous"',
            field="connection_params.credentials",
        )
    return gcsfs.GCSFileSystem(
        project=params.get("project"),
        token=token,
        endpoint_url=params.get("endpoint_url") or None,
        skip_instance_cache=True,
        block_size=READ_BLOCK_SIZE,
    )


def _azure(params: dict[str, Any]) -> fsspec.AbstractFileSystem:
    try:
        import adlfs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("adlfs", "The azure_blob source") from exc
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "blocksize": READ_BLOCK_SIZE}
    if params.get("connection_string"):
        kwargs["connection_string"] = params["connection_string"]
    elif params.get("account_name") and (params.get("account_key") or params.get("sas_token")):
        kwargs["account_name"] = params["account_name"]
        if params.get("account_key"):
            kwargs["account_key"] = params["account_key"]
        else:
            kwargs["sas_token"] = params["sas_token"]
        if params.get("endpoint_url"):
            kwargs["account_host"] = params["endpoint_url"]
    else:
        raise ConfigError(
            "azure_blob needs connection_string, or account_name with account_key or sas_token",
            field="connection_params",
        )
    try:
        return adlfs.AzureBlobFileSystem(**kwargs)
    except ValueError as exc:  # a malformed connection string or account URL
        raise ConfigError(
            f"cannot use these Azure credentials: {redact(first_line(exc), params)}",
            field="connection_params",
        ) from exc
