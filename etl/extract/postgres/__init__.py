"""PostgreSQL extractor: ADBC (binary COPY straight into Arrow) in a REPEATABLE READ snapshot.

The rows never become Python objects: the ADBC driver decodes PostgreSQL's binary COPY format
into Arrow record batches in C++. How each type is read and what it loads as is
decided once per column in `etl.extract.postgres.types` (docs/config.md, "Database types").

One module per job: `extractor` (`PostgresExtractor`, registered as "postgresql"),
`connection` (ADBC, typed literals), `errors` (driver errors as the engine's), `types` (how
each column is read), `infinity` (PostgreSQL's infinite dates and timestamps).
"""

from __future__ import annotations

from etl.extract.postgres.extractor import PostgresExtractor

__all__ = ["PostgresExtractor"]
