"""Back-pressure on a source database: at most `Connection.max_readers` sessions read rows from
one connection at once, over every run and every chunk of every worker.

A reader holds one of the connection's numbered `ReaderSlot` rows (0..max_readers-1) for as long
as it reads. Taking a slot is one conditional UPDATE (`holder` empty or its lease expired), so it
is atomic on PostgreSQL and SQLite alike without row locks; a slot row is created on first use
(a concurrent creation loses on the unique constraint and tries the UPDATE). The lease
(`settings.ETL_READER_LEASE_S`) is renewed by a thread of the holder while it reads, so a SIGKILLed worker's slot is free again once its
lease expired, and a live reader never loses its slot. A reader that finds no free slot waits
(polling every `settings.ETL_READER_WAIT_POLL_S` seconds) and says so in the logs
(`reader_slot.waiting`, `reader_slot.acquired` with `waited_s`); it never fails for it.

Only database sources (PostgreSQL, MySQL/MariaDB) are limited; file and BigQuery sources read
through APIs whose own quotas apply. The session a parallel run's coordinator keeps open to hold
PostgreSQL's exported snapshot reads no rows and takes no slot: it could otherwise take every
slot its own chunks wait for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ml_platform.models import Connection, EtlRun, ReaderSlot
from ml_platform.services.runs_progress import Pulse

logger = structlog.get_logger(__name__)

LIMITED_SOURCE_TYPES = frozenset({"postgresql", "mysql"})
"""Connection types whose readers take a slot."""


@dataclass
class ReaderLease:
    """A held slot: `renew()` pushes its expiry `settings.ETL_READER_LEASE_S` seconds ahead
    (`reader_slot` renews it from a thread while the block runs)."""

    connection_id: int
    slot: int | None
    """None: the connection is not limited (no slot was taken)."""
    holder: str
    waited_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def renew(self) -> bool:
        """Extend the lease; return False when the slot was lost (expired and taken since)."""
        if self.slot is None:
            return True
        with self._lock:
            updated = ReaderSlot.objects.filter(
                connection_id=self.connection_id, slot=self.slot, holder=self.holder
            ).update(expires_at=_expiry(), updated_at=timezone.now())
        return bool(updated)

    def release(self) -> None:
        """Free the slot (idempotent)."""
        if self.slot is None:
            return
        with self._lock:
            ReaderSlot.objects.filter(
                connection_id=self.connection_id, slot=self.slot, holder=self.holder
            ).update(holder="", expires_at=None, updated_at=timezone.now())


def _expiry(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) + dt.timedelta(seconds=float(settings.ETL_READER_LEASE_S))


def reader_holder_of_run(*, run: EtlRun) -> str:
    """Return the holder name of a one-reader run's slot, `run:<run pk>#<attempt>` (a new
    attempt of the run is a new holder)."""
    return f"run:{run.pk}#{run.attempts}"


def reader_holder_of_chunk(*, run: EtlRun, index: int, attempt: int) -> str:
    """Return the holder name of a parallel run's chunk reader, `chunk:<run pk>/<index>#<attempt>`."""
    return f"chunk:{run.pk}/{index}#{attempt}"


def reader_slot_try(*, connection: Connection, holder: str) -> ReaderLease | None:
    """Take a free reader slot of `connection` for `holder` (`reader_holder_of_run`,
    `reader_holder_of_chunk`);
    return its lease, or None when all `connection.max_readers` slots are held.

    A holder that already holds a slot of the connection gets that slot again (a repeated call
    after a lost answer never takes two)."""
    if connection.type not in LIMITED_SOURCE_TYPES:
        return ReaderLease(connection_id=connection.pk, slot=None, holder=holder)
    limit = int(connection.max_readers)
    now = timezone.now()
    mine = (
        ReaderSlot.objects.filter(connection=connection, holder=holder, slot__lt=limit)
        .values_list("slot", flat=True)
        .first()
    )
    if mine is not None:
        lease = ReaderLease(connection_id=connection.pk, slot=mine, holder=holder)
        lease.renew()
        return lease
    existing = set(
        ReaderSlot.objects.filter(connection=connection, slot__lt=limit).values_list(
            "slot", flat=True
        )
    )
    for slot in range(limit):
        if slot not in existing:
            try:
                with transaction.atomic():
                    ReaderSlot.objects.create(
                        connection=connection, slot=slot, holder=holder, expires_at=_expiry(now)
                    )
                return ReaderLease(connection_id=connection.pk, slot=slot, holder=holder)
            except IntegrityError:
                pass  # created by a concurrent reader: try to take it like any other
        taken = (
            ReaderSlot.objects.filter(connection=connection, slot=slot)
            .filter(Q(holder="") | Q(expires_at__lt=now) | Q(expires_at__isnull=True))
            .update(holder=holder, expires_at=_expiry(now), updated_at=now)
        )
        if taken:
            return ReaderLease(connection_id=connection.pk, slot=slot, holder=holder)
    return None


def reader_slot_renew_holder(*, holder: str) -> bool:
    """Extend the lease of the slot `holder` holds (a Cloud Run runner's heartbeat); return
    False when it holds none."""
    return bool(
        ReaderSlot.objects.filter(holder=holder).update(
            expires_at=_expiry(), updated_at=timezone.now()
        )
    )


def reader_slot_release_holder(*, holder: str) -> None:
    """Free the slot `holder` holds, if any (idempotent)."""
    ReaderSlot.objects.filter(holder=holder).update(
        holder="", expires_at=None, updated_at=timezone.now()
    )


def reader_slots_in_use(*, connection: Connection) -> int:
    """Return how many of `connection`'s slots are held now (unexpired)."""
    return (
        ReaderSlot.objects.filter(
            connection=connection,
            slot__lt=connection.max_readers,
            expires_at__gte=timezone.now(),
        )
        .exclude(holder="")
        .count()
    )


@contextlib.contextmanager
def reader_slot(
    *,
    connection: Connection,
    holder: str,
    on_wait: Callable[[float], None] | None = None,
    log_fields: dict | None = None,
) -> Iterator[ReaderLease]:
    """Hold a reader slot of `connection` while the block runs, waiting as long as it takes
    for one to be free; yield the lease (`waited_s`: seconds waited, `renew()` for heartbeats).

    Args:
        connection: the source's connection (its `max_readers` is the limit).
        holder: a name unique to this reader (run, chunk and attempt).
        on_wait: called with the seconds waited so far at each unsuccessful try (e.g. to
            refresh a heartbeat or show the wait on the run page).
        log_fields: extra fields of the `reader_slot.*` log events (run_id, chunk).
    """
    fields = {"connection_id": connection.pk, "holder": holder, **(log_fields or {})}
    started = time.monotonic()
    logged = False
    while True:
        lease = reader_slot_try(connection=connection, holder=holder)
        if lease is not None:
            break
        waited = time.monotonic() - started
        if not logged:
            logger.info("reader_slot.waiting", max_readers=connection.max_readers, **fields)
            logged = True
        if on_wait is not None:
            on_wait(waited)
        time.sleep(float(settings.ETL_READER_WAIT_POLL_S))
    lease.waited_s = round(time.monotonic() - started, 3) if logged else 0.0
    renewer = _LeaseRenewer(lease)
    if lease.slot is not None:
        logger.info("reader_slot.acquired", slot=lease.slot, waited_s=lease.waited_s, **fields)
        renewer.start()
    try:
        yield lease
    finally:
        renewer.stop()
        lease.release()


class _LeaseRenewer(Pulse):
    """Renew a lease every third of `settings.ETL_READER_LEASE_S`, so a reader outlives the
    lease however long it reads; a dead process renews nothing and its slot expires. Inside an
    open transaction (eager tests) nothing renews: the lease then lives its full length, longer
    than such a read."""

    failed_event = "reader_slot.renew_failed"

    def __init__(self, lease: ReaderLease) -> None:
        super().__init__(
            interval_s=max(float(settings.ETL_READER_LEASE_S) / 3, 0.05), name="etl-reader-lease"
        )
        self.lease = lease

    def beat(self) -> None:
        if not self.lease.renew():
            logger.warning("reader_slot.lost", holder=self.lease.holder)
