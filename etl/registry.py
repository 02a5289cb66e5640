"""Extractors and loaders register here by type name (shared/STYLE.md E3)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from etl.config.base import FILE_SOURCES, SOURCE_TYPES
from etl.exceptions import UnknownDestinationTypeError, UnknownSourceTypeError

if TYPE_CHECKING:
    from etl.extract.base import Extractor
    from etl.load.base import Loader

E = TypeVar("E", bound="type[Extractor]")
L = TypeVar("L", bound="type[Loader]")
T = TypeVar("T")

EXTRACTORS: dict[str, type[Extractor]] = {}
"""Maps `source_type` ("postgresql", "mysql", "local", ...) to its extractor class."""

LOADERS: dict[str, type[Loader]] = {}
"""Maps `destination.type` ("duckdb", "bigquery") to its loader class."""

_TABLE_EXTRACTOR_MODULES = {
    "postgresql": "etl.extract.postgres",
    "mysql": "etl.extract.mysql",
    "bigquery": "etl.extract.bigquery",
}
EXTRACTOR_MODULES = {
    kind: "etl.extract.files" if kind in FILE_SOURCES else _TABLE_EXTRACTOR_MODULES[kind]
    for kind in SOURCE_TYPES
}
"""Module registering each source type: only the one a job needs is imported (its client
library may be heavy: google-cloud-bigquery, PyMySQL, ...)."""

LOADER_MODULES = {"duckdb": "etl.load.duckdb", "bigquery": "etl.load.bigquery.loader"}

DESTINATION_TYPES: tuple[str, ...] = tuple(LOADER_MODULES)
"""Every `destination.type` the engine loads into."""


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
    return _registered(source_type, EXTRACTOR_MODULES, EXTRACTORS, UnknownSourceTypeError)


def get_loader(destination_type: str) -> type[Loader]:
    """Return the loader class for `destination_type`.

    Raises:
        UnknownDestinationTypeError: no loader is registered under that name.
    """
    return _registered(destination_type, LOADER_MODULES, LOADERS, UnknownDestinationTypeError)


def _registered(
    name: str,
    modules: dict[str, str],
    registry: dict[str, T],
    unknown: Callable[..., Exception],
) -> T:
    """Import the module that registers `name` (only that one), then look it up."""
    if name in modules:
        importlib.import_module(modules[name])
    try:
        return registry[name]
    except KeyError:
        raise unknown(name, known=sorted(modules)) from None
