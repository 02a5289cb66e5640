"""Loaders; importing this package registers every implementation (shared/STYLE.md E3)."""

from etl.load import bigquery, duckdb  # noqa: F401
from etl.load.base import CommittedLoad, Loader, LoadRequest, LoadResult

__all__ = ["CommittedLoad", "LoadRequest", "LoadResult", "Loader"]
