"""Extractors and loaders register here by type name (shared/STYLE.md E3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from etl.exceptions import UnknownDestinationTypeError, UnknownSourceTypeError

if TYPE_CHECKING:
    from etl.extract.base import Extractor
    from etl.load.base import Loader

E = TypeVar("E", bound="type[Extractor]")
L = TypeVar("L", bound="type[Loader]")

EXTRACTORS: dict[str, type[Extractor]] = {}
"""Maps `source_type` ("postgresql", "mysql", "local", ...) to its extractor class."""

LOADERS: dict[str, type[Loader]] = {}
"""Maps `destination.type` ("duckdb", "bigquery") to its loader class."""


def register_extractor(*source_types: str) -> Callable[[E], E]:
    def decorate(cls: E) -> E:
        for source_type in source_types:
            EXTRACTORS[source_type] = cls
        return cls

    return decorate


def register_loader(destination_type: str) -> Callable[[L], L]:
    def decorate(cls: L) -> L:
        LOADERS[destination_type] = cls
        return cls

    return decorate


def get_extractor(source_type: str) -> type[Extractor]:
    """Return the extractor class for `source_type`.

    Raises:
        UnknownSourceTypeError: no extractor is registered under that name.
    """
    import etl.extract  # noqa: F401  registers every implementation

    try:
        return EXTRACTORS[source_type]
    except KeyError:
        raise UnknownSourceTypeError(source_type, known=sorted(EXTRACTORS)) from None


def get_loader(destination_type: str) -> type[Loader]:
    """Return the loader class for `destination_type`.

    Raises:
        UnknownDestinationTypeError: no loader is registered under that name.
    """
    import etl.load  # noqa: F401  registers every implementation

    try:
        return LOADERS[destination_type]
    except KeyError:
        raise UnknownDestinationTypeError(destination_type, known=sorted(LOADERS)) from None
