"""Loaders; each registers itself when `etl.registry` imports its module."""

from etl.load.base import Loader, LoadRequest, LoadResult
from etl.load.loadlog import CommittedLoad

__all__ = ["CommittedLoad", "LoadRequest", "LoadResult", "Loader"]
