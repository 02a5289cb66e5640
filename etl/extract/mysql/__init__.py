"""The MySQL / MariaDB source, one module per job:

- `extractor`: `MySqlExtractor` (registered as "mysql"): snapshot, window, connectorx stream.
- `decode`: column metadata and values into Arrow.
- `types`: protocol type codes, native vs server-cast columns, literals.
- `errors`: driver errors into transient / terminal errors.
- `drain`: connectorx's batches taken off its unbounded channel, the backlog spilled to disk.
"""

from etl.extract.mysql.extractor import MySqlExtractor

__all__ = ["MySqlExtractor"]
