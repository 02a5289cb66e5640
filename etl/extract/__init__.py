"""Extractors; importing this package registers every implementation (shared/STYLE.md E3)."""

from etl.extract import bigquery, files, mysql, postgres  # noqa: F401
from etl.extract.base import Extraction, Extractor

__all__ = ["Extraction", "Extractor"]
