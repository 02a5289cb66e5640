"""Loaders; each registers itself when `etl.registry` imports its module."""

from etl.load.base import CommittedLoad, Loader, LoadRequest, LoadResult

__all__ = ["CommittedLoad", "LoadRequest", "LoadResult", "Loader"]
