"""The BigQuery table options of the wizard's destination step (step 4): time partitioning
(DAY/HOUR/MONTH/YEAR on a DATE/TIMESTAMP/DATETIME column, or ingestion time), integer-range
partitioning, clustering (up to 4 ordered columns), partition expiration, require partition
filter, table description and labels.

The column choices come from the preview (step 3): each loaded column's destination name and
BigQuery type. The values are checked with the engine's own rules: the `destination` block's
pydantic model (`etl.DestinationConfig`: shape, 4 clustering columns, 10,000 range
partitions, label syntax) and `etl.check_bigquery_columns` (the partition column's
type for the unit, clusterable types), so the wizard refuses what a run would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from django import forms

import etl

PARTITION_KINDS = [
    ("none", "Not partitioned"),
    ("time", "By a date/time column"),
    ("ingestion", "By ingestion time"),
    ("range", "By integer range"),
]
TIME_TYPES = ("DATE", "TIMESTAMP", "DATETIME")
CLUSTER_FIELDS = tuple(f"cluster_{n}" for n in range(1, etl.MAX_CLUSTERING_COLUMNS + 1))
OPTION_FIELDS = ("partition_kind", "partition_unit", "partition_field", "range_field",
                 "range_start", "range_end", "range_interval", "partition_expiration_days",
                 "require_partition_filter", *CLUSTER_FIELDS, "table_description",
                 "labels")  # fmt: skip
"""Form fields of the table options (shown for BigQuery only)."""
_PYDANTIC_FIELD = {
    ("partitioning", "start"): "range_start",
    ("partitioning", "end"): "range_end",
    ("partitioning", "interval"): "range_interval",
    ("partitioning", "expiration_days"): "partition_expiration_days",
    ("partitioning", "type"): "partition_unit",
    ("partitioning",): "partition_kind",
    ("clustering",): "cluster_1",
    ("labels",): "labels",
    ("description",): "table_description",
}
LABELS_HELP = "comma-separated key=value pairs, e.g. team=data, cost_center=cc-42"


def labels_parse(text: str) -> dict[str, str]:
    """`"a=1, b=x"` -> `{"a": "1", "b": "x"}` (a key without `=` gets an empty value).

    Raises:
        ValueError: a key is named twice.
    """
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, _, value = item.partition("=")
        key = key.strip()
        if key in labels:
            raise ValueError(f"label {key!r} is given twice")
        labels[key] = value.strip()
    return labels


def _column_field(label: str, choices: Sequence[str] | None, help_text: str = "") -> forms.Field:
    """A choice of the preview's columns, or free text when the preview gave none."""
    if choices is None:
        return forms.CharField(required=False, max_length=300, label=label, help_text=help_text)
    return forms.ChoiceField(
        required=False,
        label=label,
        help_text=help_text,
        choices=[("", "—")] + [(name, name) for name in choices],
    )


class TableOptionsFields(forms.Form):
    """The table-option fields and their check; mixed into `DestinationForm`.

    `columns`: `(destination name, BigQuery type)` of each loaded column (the preview), or None
    when unknown (the column fields are then free text, checked by the first run).
    """

    partition_kind = forms.ChoiceField(
        choices=PARTITION_KINDS,
        required=False,
        initial="none",
        widget=forms.RadioSelect,
        label="Partitioning",
    )
    partition_unit = forms.ChoiceField(
        choices=[(unit, unit) for unit in etl.PARTITION_UNITS],
        required=False,
        initial="DAY",
        label="Partition unit",
    )
    range_start = forms.IntegerField(required=False, label="Range start")
    range_end = forms.IntegerField(required=False, label="Range end", help_text="exclusive")
    range_interval = forms.IntegerField(required=False, min_value=1, label="Range interval")
    partition_expiration_days = forms.FloatField(
        required=False,
        min_value=0,
        label="Partition expiration (days)",
        help_text="blank: partitions never expire",
    )
    require_partition_filter = forms.BooleanField(
        required=False, label="Queries must filter on the partition column"
    )
    table_description = forms.CharField(
        required=False,
        max_length=16_384,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Table description",
    )
    labels = forms.CharField(
        required=False, max_length=4000, label="Table labels", help_text=LABELS_HELP
    )

    def __init__(self, *args: Any, columns: Sequence[Sequence[str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.columns = [(str(name), str(kind)) for name, kind in columns] if columns else None
        types = dict(self.columns or [])
        known = self.columns is not None

        def pick(allowed: Sequence[str]) -> list[str] | None:
            return [n for n, k in types.items() if k in allowed] if known else None

        self.fields["partition_field"] = _column_field(
            "Partition column", pick(TIME_TYPES), "a DATE, TIMESTAMP or DATETIME column"
        )
        self.fields["range_field"] = _column_field("Range column", pick(("INT64", "INTEGER")))
        clusterable = pick(sorted(etl.bigquery_cluster_types()))
        for number, name in enumerate(CLUSTER_FIELDS, start=1):
            self.fields[name] = _column_field(
                f"Cluster column {number}", clusterable, "in order; up to 4" if number == 1 else ""
            )

    @staticmethod
    def options_initial(destination: dict[str, Any]) -> dict[str, Any]:
        """Form values of a stored `destination` block's table options (edit, back)."""
        initial: dict[str, Any] = {"partition_kind": "none"}
        part = destination.get("partitioning") or None
        if part:
            if part.get("interval") is not None:
                initial.update(partition_kind="range", range_field=part.get("field"),
                               range_start=part.get("start"), range_end=part.get("end"),
                               range_interval=part.get("interval"))  # fmt: skip
            else:
                initial.update(
                    partition_kind="time" if part.get("field") else "ingestion",
                    partition_unit=part.get("type") or "DAY",
                    partition_field=part.get("field"),
                    partition_expiration_days=part.get("expiration_days"),
                )
            initial["require_partition_filter"] = bool(part.get("require_filter"))
        for name, column in zip(CLUSTER_FIELDS, destination.get("clustering") or [], strict=False):
            initial[name] = column
        initial["table_description"] = destination.get("description") or ""
        labels = destination.get("labels") or {}
        initial["labels"] = ", ".join(f"{k}={v}" for k, v in labels.items())
        return initial

    def _partitioning_clean(self, kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The `partitioning` block of partition kind `kind` (None: not partitioned), adding an
        error next to each field it needs and lacks."""
        if kind in ("time", "ingestion"):
            part: dict[str, Any] = {"type": data.get("partition_unit") or "DAY"}
            if kind == "time":
                if not data.get("partition_field"):
                    self.add_error("partition_field", "Choose the column to partition on.")
                part["field"] = data.get("partition_field") or None
            if data.get("partition_expiration_days"):
                part["expiration_days"] = data["partition_expiration_days"]
        elif kind == "range":
            if not data.get("range_field"):
                self.add_error("range_field", "Choose the INT64 column to partition on.")
            part = {"field": data.get("range_field") or None}
            for key in ("start", "end", "interval"):
                if data.get(f"range_{key}") is None:
                    self.add_error(f"range_{key}", "Required for integer-range partitioning.")
                part[key] = data.get(f"range_{key}")
        else:
            return None
        if data.get("require_partition_filter"):
            part["require_filter"] = True
        return part

    def options_clean(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the `destination` keys of the chosen table options (partitioning, clustering,
        description, labels), adding an error next to each field the engine refuses."""
        options: dict[str, Any] = {}
        kind = data.get("partition_kind") or "none"
        part = self._partitioning_clean(kind, data)
        if part is not None:
            options["partitioning"] = part
        clustering = [data[name] for name in CLUSTER_FIELDS if data.get(name)]
        if clustering:
            options["clustering"] = clustering
        if data.get("table_description"):
            options["description"] = data["table_description"]
        try:
            labels = labels_parse(data.get("labels") or "")
        except ValueError as exc:
            self.add_error("labels", str(exc))
            labels = {}
        if labels:
            options["labels"] = labels
        if self.errors:
            return options
        try:
            checked = etl.DestinationConfig(type="bigquery", project="check", **options)
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                name = _PYDANTIC_FIELD.get(loc[:2]) or _PYDANTIC_FIELD.get(loc[:1])
                message = str(error["msg"]).removeprefix("Value error, ")
                self.add_error(name if name in self.fields else None, message)
            return options
        if self.columns is not None:
            try:
                etl.check_bigquery_columns(checked, self.columns)
            except etl.ConfigError as exc:
                field = "cluster_1" if exc.field == "destination.clustering" else (
                    "range_field" if kind == "range" else "partition_field"
                )  # fmt: skip
                self.add_error(field, str(exc.args[0]) if exc.args else str(exc))
        return options
