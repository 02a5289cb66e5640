"""The MySQL / MariaDB source, one module per job:

- `extractor`: `MySqlExtractor` (registered as "mysql"): snapshot, window, connectorx stream.
- `decode`: column metadata and values into Arrow.
- `types`: protocol type codes, native vs server-cast columns, literals.
- `errors`: driver errors into transient / terminal errors.
"""

from etl.extract.mysql.extractor import MySqlExtractor

__all__ = ["MySqlExtractor"]
