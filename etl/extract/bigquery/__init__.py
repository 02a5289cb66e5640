"""BigQuery source: a table (`dataset.table` or `project.dataset.table`) or custom SQL, full or
incremental by a cursor column, read through the BigQuery Storage Read API in Arrow format.

How a run reads (docs/config.md, "BigQuery source"):
- a table (or table snapshot or clone) is read directly: one read session with the selected
  columns and, for an incremental run, the window as the session's `row_restriction` when the
  cursor's bounds can be written as exact literals (TIMESTAMP, DATETIME, DATE, INT64, NUMERIC,
  BIGNUMERIC); its streams are read in parallel (etl/extract/bigquery/storage_read.py);
- custom SQL, views, and a window without exact literals run as a query job (typed
  parameters) whose destination (temporary) table is then read the same way;
- the REST API's result pages (`to_arrow_iterable()`) are the fallback, used only when the
  Storage Read API is not available: it refused the session (e.g. no
  `bigquery.readsessions.create` permission, or a destination table it cannot read), the
  connection has a custom REST `api_endpoint` but no `storage_api_endpoint`, or
  `google-cloud-bigquery-storage` is missing. The run then carries one warning saying so.

The window is planned as for every table source (etl/extract/window_plan.py); its upper bound
is the cursor's maximum read just before the read, so rows committed later with a cursor at or
below it are caught on the next run only within `cursor_lag_seconds` (as in any source).
"""

from etl.extract.bigquery.extraction import READ_FALLBACK, REST_PAGES, STORAGE_READ
from etl.extract.bigquery.extractor import BigQueryExtractor

__all__ = ["READ_FALLBACK", "REST_PAGES", "STORAGE_READ", "BigQueryExtractor"]
