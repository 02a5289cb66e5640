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
HELD_BACK = (
    "rows with `{cursor}` at or after {cap} were left for the next run: a transaction open "
    "since {since} ({holder}) may still commit rows with older `now()` values"
)


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
