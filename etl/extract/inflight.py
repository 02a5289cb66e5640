"""The in-flight cap: a run's upper bound stays below every transaction still open on the source.

The rule (docs/config.md, "Incremental table loads"). Before the run's snapshot is taken, the
extractor reads, in one statement on the source, the server's clock `T0` and the start of the
oldest transaction open in other sessions (PostgreSQL: `pg_stat_activity.xact_start`, which is
the value `now()` returns inside that transaction; MariaDB/MySQL: `information_schema.INNODB_TRX`
`trx_started` of read-write transactions and the start of every running statement in
`information_schema.PROCESSLIST`, since `NOW()` there is the statement's start). The cap is

    cap = min(T0, oldest start) - INFLIGHT_MARGIN_S

and the run reads only rows with `cursor < cap`. A transaction still open when the snapshot is
taken either was open at the probe (its start is counted) or began after it (its start, and so
every `now()` it writes, is at least `T0`); either way each row it commits later has a cursor
value of at least `cap`, above the new watermark, and the next run reads it. The margin covers
the instants between a session taking its start timestamp and registering it in the views.

The cap applies to cursors holding the server's clock: zone-aware timestamps (PostgreSQL
`timestamptz`, MariaDB `TIMESTAMP`) compare as instants; wall-clock timestamps (PostgreSQL
`timestamp`, MariaDB `DATETIME`) compare in the server's default time zone (the zone a new
session gets), which is where `now()` writes them unless the writer set another zone. Date,
integer and decimal cursors get no cap: a sequence value or a date taken by a transaction that
commits late needs `cursor_lag_seconds`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

INFLIGHT_MARGIN_S = 1.0
"""Seconds subtracted from the probe's bound: the time a session may take between taking its
transaction (PostgreSQL) or statement (MariaDB) start timestamp and appearing in
`pg_stat_activity` / `INNODB_TRX` / `PROCESSLIST` (microseconds unless the server stalls)."""

LONG_TRANSACTION_S = 300.0
"""A transaction open longer than this (seconds) that holds rows back is named in the run's
warnings: an idle-in-transaction session delays every run until it ends."""

NOT_VISIBLE = (
    "open transactions of {count} other session(s) on the source cannot be seen ({reason}); "
    "rows they commit later with an older cursor value are caught only within "
    "cursor_lag_seconds"
)
STANDBY = (
    "the source is a standby: transactions open on the primary cannot be seen, so rows they "
    "commit later with an older cursor value are caught only within cursor_lag_seconds"
)
WALL_UNKNOWN = (
    "the source's default time zone could not be applied (MySQL/MariaDB: load its time zone "
    "tables), so the wall-clock cursor `{cursor}` is not capped below open transactions: rows "
    "they commit later with an older cursor value are caught only within cursor_lag_seconds"
)
HELD_BACK = (
    "rows with `{cursor}` at or after {cap} were left for the next run: a transaction open "
    "since {since} ({holder}) may still commit rows with older `now()` values"
)


PG_INFLIGHT_SQL = f"""
WITH other AS (
    SELECT pid, xact_start, state, backend_type, query
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND datname = current_database()
      AND coalesce(backend_type, '') NOT IN ('autovacuum worker', 'autovacuum launcher')
      AND coalesce(application_name, '') <> 'etl-runner'
), oldest AS (
    SELECT xact_start, pid || ', ' || coalesce(state, backend_type) AS holder
    FROM other WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 1
), bound AS (
    SELECT least(statement_timestamp(), (SELECT xact_start FROM oldest))
        - interval '{INFLIGHT_MARGIN_S} seconds' AS cap
)
SELECT cap, cap AT TIME ZONE current_setting('TimeZone'), statement_timestamp(),
    (SELECT xact_start FROM oldest), (SELECT 'pid ' || holder FROM oldest),
    (SELECT count(*) FROM other WHERE query = '<insufficient privilege>'), pg_is_in_recovery()
FROM bound
"""
"""Read before the snapshot, in one statement: `statement_timestamp()` is taken before any
`pg_stat_activity` row is, so a transaction missing from the view started after it. The wall
clock cap is in the session's default `TimeZone` (read before `SET TIME ZONE 'UTC'`)."""
PG_INFLIGHT_COLUMNS = ("cap", "cap_wall", "probed_at", "oldest", "holder", "hidden", "standby")

_OTHER_WRITERS = """
    FROM information_schema.INNODB_TRX t
    WHERE t.trx_mysql_thread_id <> CONNECTION_ID() AND t.trx_is_read_only = 0
      AND t.trx_autocommit_non_locking = 0"""
_RUNNING = """
    FROM information_schema.PROCESSLIST p
    WHERE p.ID <> CONNECTION_ID() AND p.COMMAND IN ('Query', 'Execute')
      AND NOT EXISTS (SELECT 1 FROM information_schema.INNODB_TRX r
          WHERE r.trx_mysql_thread_id = p.ID
            AND (r.trx_is_read_only = 1 OR r.trx_autocommit_non_locking = 1))"""
_STATEMENT_START = "NOW(6) - INTERVAL (p.TIME + 1) SECOND"
"""A running statement's start, at or before the real one (`TIME` is whole seconds, floored;
MySQL has no `TIME_MS`)."""
MYSQL_INFLIGHT_SQL = f"""
SELECT cap, CONVERT_TZ(cap, '+00:00', @@global.time_zone), probed_at, oldest_trx,
    oldest_statement, holder
FROM (
    SELECT LEAST(probed_at, COALESCE(oldest_trx, probed_at), COALESCE(oldest_statement, probed_at))
        - INTERVAL {int(INFLIGHT_MARGIN_S * 1_000_000)} MICROSECOND AS cap,
        probed_at, oldest_trx, oldest_statement, holder
    FROM (
        SELECT NOW(6) AS probed_at,
            (SELECT MIN(t.trx_started) {_OTHER_WRITERS}) AS oldest_trx,
            (SELECT MIN({_STATEMENT_START}) {_RUNNING}) AS oldest_statement,
            (SELECT t.trx_mysql_thread_id {_OTHER_WRITERS} ORDER BY t.trx_started LIMIT 1)
                AS holder
    ) AS probe
) AS bound
"""
"""Read before the snapshot (session `time_zone` '+00:00': times are UTC wall clocks). `NOW(6)`
is the statement's start, before any view row is read. Read-only and autocommit non-locking
transactions (other runs' snapshots, plain SELECTs) cannot write and are left out."""
MYSQL_CLOCK_ONLY_SQL = f"""
SELECT NOW(6) - INTERVAL {int(INFLIGHT_MARGIN_S * 1_000_000)} MICROSECOND,
    CONVERT_TZ(NOW(6) - INTERVAL {int(INFLIGHT_MARGIN_S * 1_000_000)} MICROSECOND, '+00:00',
        @@global.time_zone)
"""
"""The cap when the views cannot be read: transactions started after the probe are still
covered."""
PG_CLOCK_ONLY_SQL = f"""
SELECT statement_timestamp() - interval '{INFLIGHT_MARGIN_S} seconds',
    (statement_timestamp() - interval '{INFLIGHT_MARGIN_S} seconds')
        AT TIME ZONE current_setting('TimeZone')
"""
"""The PostgreSQL cap when `pg_stat_activity` cannot be read."""


@dataclass
class InflightCap:
    """What the probe read, in the source's own clock.

    `instant` (aware, UTC) caps zone-aware cursors; `wall` (naive, the server's default zone)
    caps wall-clock cursors; either is None when it could not be computed. `oldest` is the
    start of the oldest open transaction seen (aware, UTC), `holder` describes its session.
    """

    instant: dt.datetime | None
    wall: dt.datetime | None
    probed_at: dt.datetime | None = None
    oldest: dt.datetime | None = None
    holder: str = ""
    warnings: list[str] = field(default_factory=list)

    def bound_for(self, upper: Any) -> Any:
        """Return the cap to compare with a cursor whose largest value is `upper` (same
        kind of value), or None when the cursor's type gets no cap."""
        if not isinstance(upper, dt.datetime):
            return None
        if upper.tzinfo is not None:
            return self.instant
        return self.wall

    def held_back(self, cursor: str, cap: Any) -> str | None:
        """Return the warning naming a long transaction that holds rows back, if any."""
        if self.oldest is None or self.probed_at is None:
            return None
        if (self.probed_at - self.oldest).total_seconds() < LONG_TRANSACTION_S:
            return None
        return HELD_BACK.format(
            cursor=cursor,
            cap=cap.isoformat(),
            since=self.oldest.isoformat(),
            holder=self.holder or "another session",
        )
