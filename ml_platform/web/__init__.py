"""Server-rendered pages: the 5-step ETL wizard, the source list and source pages (staff only)."""
