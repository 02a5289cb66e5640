"""`FileFormatOptions`: how files are parsed (DESIGN.md §4 `file_format_options`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from etl.config.base import (
    ConfigModel,
)

DEFAULT_NULL_VALUES = ("", "NULL", "null", "\\N")
"""CSV NULL markers when `null_values` is not given: an empty field (as BigQuery, DuckDB and
Spark read CSV), SQL's `NULL` / `null` as exports write them, and `\\N` (MySQL's and
PostgreSQL's text NULL)."""


class FileFormatOptions(ConfigModel):
    """Options of `file_format`; unknown keys are rejected so typos are caught."""

    delimiter: str = ","
    """CSV field separator, one character (e.g. `;`, `\\t`, `|`)."""
    encoding: str = "utf-8"
    """Text encoding of CSV/JSON files (`utf-8`, `utf-8-sig`, `latin-1`, `cp1252`, ...)."""
    has_header: bool = True
    """CSV: the first line holds column names; otherwise columns are named `column_1`, ..."""
    quote_char: str = '"'
    """CSV quote character; quoted fields may contain delimiters and newlines."""
    escape_char: str | None = None
    """CSV escape character; None means quotes are escaped by doubling."""
    null_values: list[str] = Field(default_factory=lambda: list(DEFAULT_NULL_VALUES))
    """CSV strings read as NULL (quoted or not). `NA` is not among the defaults: it is also
    text (Namibia's country code, "not applicable"), and readers that null it by default change
    data silently; list it here when a file means NULL by it."""
    skip_rows: int = Field(default=0, ge=0)
    """CSV lines skipped before the header."""
    allow_quoted_newlines: bool = True
    """CSV: quoted fields may contain line breaks (LF, CRLF or CR), as spreadsheet and database
    exports write them (RFC 4180 section 2.6; BigQuery's option of the same name). A quote that
    is never closed still fails the run naming the file and the line it opens on (a file
    holding a line break inside quotes is checked once more, with Python's csv module).
    `false`: a value spanning lines fails the run at its line."""
    decimal_point: str = "."
    """CSV decimal separator of numbers (`,` for `1,5` with a `;` delimiter)."""
    column_types: dict[str, str] = Field(default_factory=dict)
    """CSV column name -> type, overriding inference: string, integer, float, boolean, date,
    timestamp (wall clock), timestamptz (UTC instant) or decimal(P,S)."""
    catalog_files: Literal["all", "latest"] = "all"
    """Catalog load of files: `all` matching files, or only the `latest` by last-modified."""

    @field_validator("column_types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        from etl.formats.types import named_type

        for name, kind in value.items():
            try:
                named_type(kind)
            except ValueError as exc:
                raise ValueError(f"column {name!r}: {exc}") from None
        return value

    @field_validator("delimiter", "quote_char", "decimal_point")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value
