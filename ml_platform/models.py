"""Control-plane models: thin (fields, choices, constraints, `__str__`); services do the writes.

One module past 300 lines on purpose: it holds declarations only (fields, choices, constraints,
simple properties), the whole schema of the app (nine tables that refer to each other) read in
one place; `DataSource` alone is 140 lines because it is the one definition of the job
contract's fields (labels, help texts) that the forms, serializers and admin derive from
(`ml_platform.contract`)."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ml_platform.contract import SOURCE_TYPE_CHOICES
from ml_platform.fields import SecretTextField


class BaseModel(models.Model):
    created_at = models.DateTimeField(db_index=True, default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


SourceType = models.TextChoices(
    "SourceType", [(value.upper(), (value, label)) for value, label in SOURCE_TYPE_CHOICES]
)
"""The engine's source types (`etl.SOURCE_TYPES`) with the labels of `contract.CONNECTION_TYPES`."""


class Connection(BaseModel):
    """Where a source lives and how to log in; `credentials` is a JSON object encrypted at rest
    (the type's `secrets` in `contract.CONNECTION_TYPES`), never shown or logged. Which fields
    a type uses is `contract.CONNECTION_TYPES`."""

    name = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=16, choices=SourceType.choices)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    database = models.CharField(max_length=255, blank=True)
    user = models.CharField(max_length=255, blank=True)
    bucket = models.CharField(max_length=255, blank=True, help_text="S3 / GCS bucket")
    container = models.CharField(max_length=255, blank=True, help_text="Azure Blob container")
    base_path = models.CharField(max_length=1024, blank=True, help_text="local: root folder")
    project = models.CharField(max_length=255, blank=True, help_text="GCP project (BigQuery, GCS)")
    endpoint_url = models.CharField(
        max_length=1024, blank=True, help_text="emulator / S3-compatible"
    )
    extra_params = models.JSONField(default=dict, blank=True, help_text="more non-secret params")
    credentials = SecretTextField(null=True, blank=True, editable=False)
    max_readers = models.PositiveSmallIntegerField(
        "max readers",
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(256)],
        help_text=(
            "most sessions reading rows from this database (PostgreSQL, MySQL) at once, over "
            "every data source, run and parallel chunk using this connection; more wait for a "
            "free slot (they never fail for it). Keeps ten big sources on one database from "
            "opening forty connections"
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class EtlRunKey(BaseModel):
    """An idempotency key (e.g. Cloud Scheduler's `X-CloudScheduler-ScheduleTime`) that was
    answered with a run already active under another key, so the same key never makes a second
    run later. A key that created its run is on the run itself (`EtlRun.idempotency_key`)."""

    data_source = models.ForeignKey("DataSource", on_delete=models.CASCADE, related_name="run_keys")
    key = models.CharField(max_length=255)
    run = models.ForeignKey("EtlRun", on_delete=models.CASCADE, related_name="keys")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["data_source", "key"], name="etl_run_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} -> run {self.run_id}"


class DataSource(BaseModel):
    """One job: the config contract of DESIGN.md §4 plus schedule; the connection gives
    `source_type` and `connection_params`. The one definition of the job's fields in the
    control plane (labels, help texts, choices, defaults): a field named as an `etl.JobConfig`
    field is passed to the engine as is (`contract.job_fields`)."""

    class LoadType(models.TextChoices):
        TRANSACTIONAL = "transactional", "Transactional (incremental append)"
        CATALOG = "catalog", "Catalog (snapshot)"
        MERGE = "merge", "Incremental, deduplicated on the primary key"

    class NullCursor(models.TextChoices):
        FAIL = "fail", "Fail the run"
        INCLUDE = "include", "Load once"
        EXCLUDE = "exclude", "Skip"

    class OnBadRows(models.TextChoices):
        FAIL = "fail", "Fail the run"
        QUARANTINE = "quarantine", "Quarantine bad rows"

    class OnUnrepresentable(models.TextChoices):
        NEAREST = "nearest", "Load the nearest exact value (or NULL) and count it"
        FAIL = "fail", "Fail the run"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"
        JSON = "json", "JSON"
        JSONL = "jsonl", "JSON Lines"

    name = models.CharField("data source name", max_length=200, unique=True)
    description = models.TextField(
        blank=True, max_length=1000, help_text="what this job is for (at most 1,000 characters)"
    )
    connection = models.ForeignKey(
        Connection, on_delete=models.PROTECT, related_name="data_sources"
    )
    load_type = models.CharField(
        "load strategy", max_length=16, choices=LoadType.choices, default=LoadType.TRANSACTIONAL
    )
    dest_table_name = models.CharField("destination table", max_length=300)
    selected_columns = models.JSONField(
        default=list, blank=True, help_text="source columns to load, in order; empty: all"
    )
    source_table_name = models.CharField("table", max_length=1024, blank=True)
    custom_sql = models.TextField("custom SQL", blank=True)
    timestamp_column = models.CharField("cursor column", max_length=300, blank=True)
    primary_key = models.JSONField(
        default=list,
        blank=True,
        help_text="dedups rows read again at the watermark or in the look-back window",
    )
    cursor_lag_seconds = models.FloatField(
        "look-back (seconds)",
        default=0,
        validators=[MinValueValidator(0)],
        help_text="re-read rows this far below the watermark, for late-committed rows",
    )
    null_cursor = models.CharField(
        "rows whose cursor is NULL",
        max_length=8,
        choices=NullCursor.choices,
        default=NullCursor.FAIL,
    )
    on_bad_rows = models.CharField(
        "bad rows", max_length=12, choices=OnBadRows.choices, default=OnBadRows.FAIL
    )
    on_unrepresentable = models.CharField(
        max_length=8, choices=OnUnrepresentable.choices, default=OnUnrepresentable.NEAREST
    )
    allow_widen_to_string = models.BooleanField(
        default=False, help_text="a column whose type changes incompatibly becomes STRING"
    )
    initial_value = models.CharField(
        max_length=255,
        blank=True,
        help_text="first run starts at this cursor value (ISO 8601 or a number); blank: all rows",
    )
    file_pattern = models.CharField(
        max_length=1024, default="*", blank=True, help_text="glob: * ? [abc] **"
    )
    file_prefix = models.CharField("folder prefix", max_length=1024, blank=True)
    file_format = models.CharField(max_length=8, choices=FileFormat.choices, blank=True)
    file_format_options = models.JSONField(default=dict, blank=True)
    chunk_size = models.PositiveIntegerField(
        default=100_000,
        validators=[MinValueValidator(1), MaxValueValidator(10_000_000)],
        help_text="rows per Arrow batch at most",
    )
    parallelism = models.PositiveSmallIntegerField(
        "parallel readers",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text=(
            "split each run's read of this table (PostgreSQL, MySQL) into this many key ranges, "
            "read at the same time by separate Celery workers (or Cloud Run tasks) and committed "
            "together in one step. It helps a large table (millions of rows) whose run is bound "
            "by one reader, when there are idle workers and the source database has spare CPU "
            "and I/O; it does not help a small table or a busy source. Readers of one connection "
            "never exceed its max readers. 1: one reader"
        ),
    )
    destination = models.JSONField(
        default=dict,
        blank=True,
        help_text="type duckdb|bigquery, path, dataset, project, location, api_endpoint",
    )
    destination_credentials = SecretTextField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    schedule_cron = models.CharField(
        "schedule (cron)", max_length=100, blank=True, help_text="minute hour day month weekday"
    )
    schedule_timezone = models.CharField("time zone", max_length=64, default="UTC")
    alert_emails = models.CharField(
        max_length=1000,
        blank=True,
        help_text="comma-separated, besides ETL_ALERT_EMAILS; told once when a run fails or no "
        "run succeeds for 2 x the schedule interval, and once when it recovers",
    )
    alert_webhook_url = models.CharField(
        "alert webhook (Slack)",
        max_length=1024,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Slack-compatible; besides ETL_ALERT_WEBHOOK_URL",
    )
    alert_stale_after_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="seconds without a success before a stale alert; default 2 x schedule interval",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EtlRun(BaseModel):
    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        API = "api", "API"
        SCHEDULER = "scheduler", "Cloud Scheduler"
        BEAT = "beat", "Celery beat"
        CLI = "cli", "Command line"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # its commit was refused: another run committed into the table after this run planned
        # (it stalled and was presumed dead); nothing of it was kept, never retried
        SUPERSEDED = "superseded", "Superseded"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="runs")
    uid = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="engine run id, stamped on loaded rows as _etl_run_id (hex)",
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True, help_text="seconds")
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    rows_extracted = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0)
    rows_skipped = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(
        default=0, help_text="rows set aside in <table>__rejected (on_bad_rows: quarantine)"
    )
    bytes_extracted = models.BigIntegerField(default=0)
    files_loaded = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    progress_rows = models.BigIntegerField(default=0, help_text="rows loaded so far")
    progress_bytes = models.BigIntegerField(default=0, help_text="bytes extracted so far")
    warnings = models.JSONField(default=list, blank=True)
    watermark_before = models.TextField(blank=True, help_text="cursor watermark the run read from")
    watermark_after = models.TextField(blank=True, help_text="cursor watermark it committed")
    log_lines = models.JSONField(
        default=list,
        blank=True,
        help_text='the run\'s own log: [{"ts", "level", "event", "fields"}]',
    )
    reconciled_run_id = models.CharField(max_length=64, blank=True)
    chunk_plan = models.JSONField(
        null=True,
        blank=True,
        default=None,
        help_text="a parallel run's chunk plan (etl.ChunkPlan JSON); null for a one-reader run",
    )
    error_class = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["data_source", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="etl_run_unique_idempotency_key_per_source",
            ),
            # the per-source lock: at most one queued or running run per data source
            models.UniqueConstraint(
                fields=["data_source"],
                condition=Q(status__in=["queued", "running"]),
                name="etl_run_one_active_per_source",
            ),
        ]
        indexes = [models.Index(fields=["data_source", "-queued_at"], name="etl_run_source_queued")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.data_source_id} ({self.status})"

    @property
    def log_ids(self) -> dict[str, object]:
        """The run's ids for a log line: `run_id`, the engine's run id (the UUID hex stamped on
        loaded rows as `_etl_run_id`, which the engine's own lines carry), and `run_pk`, this
        row's integer id (API URLs, the task argument)."""
        return {"run_id": self.uid.hex, "run_pk": self.pk}

    @property
    def has_warnings(self) -> bool:
        """Succeeded, but with warnings or rejected rows ("Succeeded with warnings")."""
        return self.status == self.Status.SUCCEEDED and bool(self.warnings or self.rows_rejected)

    @property
    def status_label(self) -> str:
        return "Succeeded with warnings" if self.has_warnings else self.get_status_display()

    @property
    def status_class(self) -> str:
        """CSS class of the status: `warning` (amber) for a succeeded run with warnings."""
        return "warning" if self.has_warnings else self.status


class EtlRunChunk(BaseModel):
    """One key range of a parallel run (`DataSource.parallelism` > 1): who extracts it, its
    attempt and heartbeat, and the engine's `ChunkReport` once its Parquet parts are staged."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        WAITING = "waiting", "Waiting for a reader slot"
        RUNNING = "running", "Extracting"
        DONE = "done", "Staged"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(EtlRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(default=0, help_text="claims so far (1 = first)")
    worker = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    waited_s = models.FloatField(default=0, help_text="seconds spent waiting for a reader slot")
    rows = models.BigIntegerField(default=0)
    report = models.JSONField(null=True, blank=True, default=None, help_text="etl.ChunkReport")
    error_class = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="etl_run_chunk_unique_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id} ({self.status})"


class ReaderSlot(BaseModel):
    """One of a connection's `max_readers` reader slots (numbered 0..max_readers-1): free when
    `holder` is empty or `expires_at` has passed (its holder died without releasing it)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="slots")
    slot = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["connection", "slot"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "slot"], name="reader_slot_unique_per_connection"
            )
        ]

    def __str__(self) -> str:
        return f"slot {self.slot} of {self.connection_id}: {self.holder or 'free'}"


class DataSourceState(BaseModel):
    """What a data source remembers between runs (the engine's `etl.SyncState` without files)."""

    data_source = models.OneToOneField(
        DataSource, on_delete=models.CASCADE, related_name="sync_state"
    )
    watermark_value = models.TextField(blank=True)
    watermark_type = models.CharField(max_length=16, blank=True)
    boundary_keys = models.JSONField(default=list, blank=True)
    null_keys = models.JSONField(default=list, blank=True)
    boundary = models.JSONField(null=True, blank=True, default=None)
    """How the keys were computed (`etl.state.BoundarySpec` as JSON); null before it existed."""
    column_map = models.JSONField(default=dict, blank=True)
    last_run_id = models.CharField(max_length=64, blank=True)
    full_refresh_pending = models.BooleanField(
        default=False, help_text="reset: the next run replaces the destination table"
    )

    def __str__(self) -> str:
        return f"state of {self.data_source_id}: {self.watermark_value or '-'}"


class ProcessedFile(BaseModel):
    """One entry of a file source's ledger: the version of `path` that was loaded."""

    class Status(models.TextChoices):
        LOADED = "loaded", "Loaded"
        RELOADED = "reloaded", "Reloaded (changed since an earlier load)"

    data_source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="processed_files"
    )
    path = models.CharField(max_length=1024)
    version = models.CharField(max_length=255, help_text="generation (GCS), ETag, or mtime ns")
    size = models.BigIntegerField(help_text="bytes")
    last_modified = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LOADED)
    run = models.ForeignKey(
        EtlRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="processed_files"
    )
    engine_run_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(
                fields=["data_source", "path"], name="processed_file_unique_path_per_source"
            ),
        ]

    def __str__(self) -> str:
        return self.path


class AlertIncident(BaseModel):
    """One problem of a data source, alerted once when it opens and once when it closes."""

    class Kind(models.TextChoices):
        FAILED = "failed", "Run failed"
        STALE = "stale", "No recent success"

    data_source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="alert_incidents"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey(
        EtlRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.TextField(blank=True)
    delivery_errors = models.TextField(blank=True, help_text="channels that could not be reached")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["data_source", "kind"],
                condition=Q(closed_at__isnull=True),
                name="alert_incident_one_open_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} incident of {self.data_source_id}"
