"""Extractors; each registers itself when `etl.registry` imports its module."""

from etl.extract.base import Extraction, Extractor

__all__ = ["Extraction", "Extractor"]
