"""The connection form of the wizard and of the connection edit page: one form, fields shown
per type (PostgreSQL/MySQL password; S3 keys or instance role, region, endpoint; GCS and
BigQuery service-account JSON, Application Default Credentials or anonymous for an emulator;
Azure connection string, account key or SAS). Secrets are never rendered back: on edit a blank
secret keeps the stored one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

import etl
from ml_platform.contract import CONNECTION_TYPES, connection_fields, form_field
from ml_platform.models import Connection, SourceType
from ml_platform.web.forms_service_account import GOOGLE_AUTH, service_account_from
from ml_platform.web.forms_service_account import (  # the form's message, named here too
    SERVICE_ACCOUNT_INVALID as SERVICE_ACCOUNT_INVALID,
)

S3_AUTH = [("keys", "Access key ID + secret"), ("role", "Instance role / default AWS chain")]
AZURE_AUTH = [
    ("connection_string", "Connection string"),
    ("account_key", "Account name + account key"),
    ("sas", "Account name + SAS token"),
]
SECRET_FIELDS = (
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "connection_string",
    "account_key",
    "sas_token",
    "service_account_json",
)
"""Form fields holding a secret: never rendered back; on edit, blank keeps the stored one."""
FORM_FIELDS_OF_KEY = {
    "credentials": ("google_auth", "service_account_file", "service_account_json"),
    "aws_access_key_id": ("s3_auth", "aws_access_key_id"),
    "connection_string": ("azure_auth", "connection_string"),
}
"""The form fields that set a connection key, where they are not the key's own field."""


def _field_types() -> dict[str, str]:
    """Which connection types show each form field: `{field: "type type ..."}`, from each
    type's params, settings, extras and secrets in `contract.CONNECTION_TYPES`."""
    shown: dict[str, list[str]] = {}
    for kind, spec in CONNECTION_TYPES.items():
        for key in (*spec.params, *spec.settings, *spec.extras, *spec.secrets):
            for name in FORM_FIELDS_OF_KEY.get(key, (key,)):
                shown.setdefault(name, []).append(kind)
    return {name: " ".join(kinds) for name, kinds in shown.items()}


FIELD_TYPES = _field_types()
"""Which connection types show each field (the page hides the others)."""
FIELD_AUTH = {
    "aws_access_key_id": ("s3_auth", "keys"),
    "aws_secret_access_key": ("s3_auth", "keys"),
    "service_account_file": ("google_auth", "service_account"),
    "service_account_json": ("google_auth", "service_account"),
    "connection_string": ("azure_auth", "connection_string"),
    "account_name": ("azure_auth", "account_key sas"),
    "account_key": ("azure_auth", "account_key"),
    "sas_token": ("azure_auth", "sas"),
}
"""Fields shown only for some choices of a credentials radio group: (group, choices)."""
REQUIRED = "This field is required for a {type} connection."
KEEP_HELP = "Leave blank to keep the stored value."


class ConnectionForm(forms.Form):
    """Create (no `instance`) or edit (`instance`, secrets optional) a connection."""

    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=SourceType.choices)
    host = forms.CharField(required=False, max_length=255)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(required=False, max_length=255)
    user = forms.CharField(required=False, max_length=255)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    max_readers = form_field(Connection, "max_readers", required=False)
    base_path = forms.CharField(required=False, max_length=1024, label="Base path (local files)")
    bucket = forms.CharField(required=False, max_length=255)
    container = forms.CharField(required=False, max_length=255, label="Container")
    project = forms.CharField(required=False, max_length=255, label="GCP project")
    region = forms.CharField(required=False, max_length=64, label="Region")
    endpoint_url = forms.URLField(
        assume_scheme="http",
        required=False,
        max_length=1024,
        label="Endpoint URL",
        help_text="Only for S3-compatible stores and emulators; leave blank for the cloud.",
    )
    s3_auth = forms.ChoiceField(
        choices=S3_AUTH, required=False, widget=forms.RadioSelect, label="S3 credentials"
    )
    aws_access_key_id = forms.CharField(required=False, max_length=128, label="Access key ID")
    aws_secret_access_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), label="Secret access key"
    )
    google_auth = forms.ChoiceField(
        choices=GOOGLE_AUTH, required=False, widget=forms.RadioSelect, label="Google credentials"
    )
    service_account_file = forms.FileField(required=False, label="Service-account JSON file")
    service_account_json = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="…or paste the service-account JSON",
    )
    azure_auth = forms.ChoiceField(
        choices=AZURE_AUTH, required=False, widget=forms.RadioSelect, label="Azure credentials"
    )
    connection_string = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False)
    )
    account_name = forms.CharField(required=False, max_length=255, label="Storage account name")
    account_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    sas_token = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), label="SAS token"
    )

    def __init__(
        self,
        *args: Any,
        instance: Connection | None = None,
        stored_credentials: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.instance = instance
        self.stored = dict(stored_credentials or {})
        if instance is not None:
            kwargs.setdefault("initial", connection_initial(instance, self.stored))
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [("", "— choose a type —"), *SourceType.choices]
        self.fields["type"].widget.attrs["data-type-switch"] = "1"
        self.fields["s3_auth"].initial = "keys"
        self.fields["google_auth"].initial = "service_account"
        self.fields["azure_auth"].initial = "connection_string"
        if instance is not None:
            for name in SECRET_FIELDS:
                self.fields[name].help_text = KEEP_HELP

    def typed_fields(self) -> list[tuple[Any, str, str, str]]:
        """`[(bound field, "types it applies to", auth group, "auth choices")]` in display
        order (empty strings: always shown)."""
        return [
            (self[name], FIELD_TYPES.get(name, ""), *FIELD_AUTH.get(name, ("", "")))
            for name in self.fields
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("type")
        if not kind:
            return data
        for name in etl.REQUIRED_CONNECTION_KEYS[kind]:
            if not data.get(name):
                self.add_error(name, REQUIRED.format(type=kind))
        try:
            data["credentials"] = self._credentials(kind, data)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field, message)
        return data

    def _secret(self, data: dict[str, Any], name: str, key: str | None = None) -> Any:
        return data.get(name) or self.stored.get(key or name)

    def _credentials(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """The complete credentials object to store (typed values, else the stored ones)."""
        missing: dict[str, str] = {}
        creds: dict[str, Any] = {}
        # the secrets the type takes (contract.CONNECTION_TYPES) decide which fields count
        secrets = CONNECTION_TYPES[kind].secrets
        if "password" in secrets:
            creds["password"] = self._secret(data, "password")
        elif "aws_secret_access_key" in secrets and (data.get("s3_auth") or "keys") == "keys":
            for name in ("aws_access_key_id", "aws_secret_access_key"):
                creds[name] = self._secret(data, name)
                if not creds[name]:
                    missing[name] = "Required with access-key credentials."
        elif "credentials" in secrets:
            auth = data.get("google_auth") or "service_account"
            if auth == "anonymous":
                creds["credentials"] = "anonymous"
            elif auth == "service_account":
                stored = self.stored.get("credentials")
                key = service_account_from(data) or (stored if isinstance(stored, dict) else None)
                if key is None:
                    missing["service_account_file"] = (
                        "Upload or paste a service-account JSON key, or choose Application "
                        "Default Credentials."
                    )
                creds["credentials"] = key
        elif "connection_string" in secrets:
            auth = data.get("azure_auth") or "connection_string"
            wanted = {
                "connection_string": ["connection_string"],
                "account_key": ["account_name", "account_key"],
                "sas": ["account_name", "sas_token"],
            }[auth]
            for name in wanted:
                value = data.get(name) if name == "account_name" else self._secret(data, name)
                if not value:
                    missing[name] = "Required with this kind of Azure credentials."
                elif name != "account_name":
                    creds[name] = value
        if missing:
            raise ValidationError(missing)
        return {key: value for key, value in creds.items() if value not in (None, "")}

    def connection_values(self) -> dict[str, Any]:
        """Keyword arguments of `connection_create` (also the `data` + `credentials` of
        `connection_update`): model fields of the type, `extra_params` (region, account name)
        and the complete `credentials` object."""
        data = self.cleaned_data
        kind = data["type"]
        spec = CONNECTION_TYPES[kind]
        values: dict[str, Any] = {"name": data["name"], "type": kind}
        for name in spec.params:
            values[name] = data.get(name) or ("" if name != "port" else None)
        if spec.default_port and not values.get("port"):
            values["port"] = spec.default_port
        for name in spec.settings:  # blank: the model's default
            if data.get(name) is not None:
                values[name] = data[name]
        extra = {name: data[name] for name in spec.extras if data.get(name)}
        if kind == "azure_blob" and data.get("azure_auth") not in ("account_key", "sas"):
            extra.pop("account_name", None)  # a connection string names the account itself
        values["extra_params"] = extra
        values["credentials"] = data.get("credentials") or None
        return values


def connection_initial(connection: Connection, stored: dict[str, Any]) -> dict[str, Any]:
    """The form's initial values for `connection` (secrets left out)."""
    extra = connection.extra_params or {}
    initial: dict[str, Any] = {
        name: getattr(connection, name) for name in connection_fields() if name != "extra_params"
    }
    initial["region"] = extra.get("region", "")
    initial["account_name"] = extra.get("account_name", "")
    initial["aws_access_key_id"] = ""
    initial["s3_auth"] = "keys" if stored.get("aws_secret_access_key") else "role"
    google = stored.get("credentials")
    initial["google_auth"] = (
        "anonymous" if google == "anonymous" else "service_account" if google else "adc"
    )
    initial["azure_auth"] = (
        "account_key"
        if stored.get("account_key")
        else "sas"
        if stored.get("sas_token")
        else "connection_string"
    )
    return initial
