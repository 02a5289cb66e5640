"""One dlt load, run by bench/run.py in bench/.venv (dlt is a peer, never a dependency of etl/).

Prints one JSON line: {"rows": <rows dlt normalized for lineitem>}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["sql", "file"], required=True)
    parser.add_argument("--credentials", help="SQLAlchemy URL (sql)")
    parser.add_argument("--table", default="lineitem")
    parser.add_argument("--schema", default="bench")
    parser.add_argument("--backend", default="connectorx")
    parser.add_argument("--limit", type=int, default=0, help="rows (sql, a smaller slice)")
    parser.add_argument("--incremental", action="store_true", help="l_updated_at cursor, merge")
    parser.add_argument("--bucket-url", help="folder (file)")
    parser.add_argument("--glob", help="file glob (file)")
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl"])
    parser.add_argument("--duckdb", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    if args.kind == "sql":
        from dlt.sources.sql_database import sql_table

        kwargs: dict = {}
        if args.incremental:
            kwargs["incremental"] = dlt.sources.incremental("l_updated_at")
        table_kw = {}
        if args.limit:
            # A slice: the first N rows by key, through dlt's own query adapter.
            def limit_query(query, table):
                return query.order_by(table.c.l_orderkey, table.c.l_linenumber).limit(args.limit)

            table_kw["query_adapter_callback"] = limit_query
        resource = sql_table(
            credentials=args.credentials,
            table=args.table,
            schema=args.schema,
            backend=args.backend,
            chunk_size=100_000,
            **kwargs,
            **table_kw,
        )
        if args.incremental:
            resource.apply_hints(
                write_disposition="merge", primary_key=["l_orderkey", "l_linenumber"]
            )
            disposition = None
        else:
            disposition = "replace"
    else:
        from dlt.sources.filesystem import filesystem, read_csv_duckdb, read_jsonl, read_parquet

        files = filesystem(bucket_url=args.bucket_url, file_glob=args.glob)
        if args.format == "csv":
            # dlt's fastest CSV reader (DuckDB into Arrow); `read_csv` goes through pandas chunks.
            reader = read_csv_duckdb(use_pyarrow=True, chunk_size=100_000)
        elif args.format == "parquet":
            reader = read_parquet(use_pyarrow=True, chunksize=100_000)  # Arrow batches, not dicts
        else:
            reader = read_jsonl(chunksize=10_000)  # dicts: dlt has no Arrow JSONL reader
        resource = (files | reader).with_name(args.table)
        disposition = "replace"

    pipeline = dlt.pipeline(
        pipeline_name=args.name,
        destination=dlt.destinations.duckdb(args.duckdb),
        dataset_name="bench",
        pipelines_dir=args.pipelines_dir,
        progress=None,
    )
    run_kw = {"write_disposition": disposition} if disposition else {}
    pipeline.run(resource, table_name=args.table, **run_kw)
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({"rows": int(counts.get(args.table, 0))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
