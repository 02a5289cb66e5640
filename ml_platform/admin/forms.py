"""The admin's forms of the rows it edits (connections, data sources): checked and saved
through the entity's services, with the stored secret write-only."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from ml_platform import services
from ml_platform.contract import CONNECTION_TYPES
from ml_platform.models import Connection, DataSource

SECRET_HELP = "Write-only: the stored value is never shown. Leave blank to keep it."
PASSWORD_NOT_TAKEN = (
    "A {type} connection has no single secret: give its credentials in Credentials (JSON)."
)


def _json_object_or_string(value: str, *, field: str) -> Any:
    value = value.strip()
    if not value:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if field == "destination_credentials":
            return value  # e.g. "anonymous"
        raise ValidationError("Enter a JSON object.") from None


class ServiceModelForm(forms.ModelForm):
    """A model form that checks and saves its row through the entity's services (STYLE.md R3):
    `clean` shows the service's validation errors next to the field they name, and the
    admin's `save_model` calls `service_save`. The stored secret (`secret_field`) is write-only:
    the form takes a new value in `new_<secret_field>` and a `clear_<secret_field>` box."""

    updatable_fields: tuple[str, ...] = ()
    """Fields the update service accepts in `data`."""
    secret_field = ""
    """The model's `SecretTextField`, also the services' keyword for its new value."""

    def service_data(self) -> dict[str, Any]:
        """Return the cleaned values of `updatable_fields` the form has."""
        return {f: self.cleaned_data[f] for f in self.updatable_fields if f in self.cleaned_data}

    def secret_input(self) -> Any:
        """Return the secret to store, or None to keep the stored one."""
        return self.cleaned_data.get(f"new_{self.secret_field}")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        for field, value in self.service_data().items():
            setattr(self.instance, field, value)
        try:
            self.service_validate()
        except ValidationError as exc:
            self._update_errors(exc)
        return cleaned

    def service_validate(self) -> None:
        """Check `self.instance` with the entity's `<entity>_validate` service.

        Raises:
            ValidationError: keyed by the model field at fault.
        """
        raise NotImplementedError

    def service_save(self, *, instance: Any, data: dict[str, Any], secret: Any, clear: bool) -> Any:
        """Create the row (`instance` None) or update `instance` through the entity's services.

        Raises:
            ValidationError: keyed by the model field at fault.
        """
        raise NotImplementedError


class ConnectionForm(ServiceModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=SECRET_HELP,
        label="Password / secret key",
    )
    new_credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            SECRET_HELP + ' JSON object, e.g. {"aws_secret_access_key": "..."} or '
            '{"credentials": {...service account...}}.'
        ),
        label="Credentials (JSON)",
    )
    clear_credentials = forms.BooleanField(required=False, help_text="Remove stored credentials.")

    updatable_fields = services.connections.UPDATABLE_FIELDS
    secret_field = "credentials"

    class Meta:
        model = Connection
        fields = list(services.connections.UPDATABLE_FIELDS)

    def clean_new_credentials(self) -> Any:
        return _json_object_or_string(self.cleaned_data["new_credentials"], field="credentials")

    def service_validate(self) -> None:
        services.connection_validate(connection=self.instance)

    def service_save(
        self, *, instance: Connection | None, data: dict[str, Any], secret: Any, clear: bool
    ) -> Connection:
        if instance is None:
            return services.connection_create(**data, credentials=secret)
        return services.connection_update(
            connection=instance, data=data, credentials=secret, clear_credentials=clear
        )

    def secret_input(self) -> dict[str, Any] | None:
        """Return the credentials object to store (`new_credentials` with `password` under the
        type's secret key, `contract.CONNECTION_TYPES`), or None to keep the stored one."""
        credentials = self.cleaned_data.get("new_credentials")
        password = self.cleaned_data.get("password")
        if credentials is None and not password:
            return None
        merged = dict(credentials or {})
        if password:
            merged[CONNECTION_TYPES[self.cleaned_data["type"]].secret or "password"] = password
        return merged

    def clean(self) -> dict[str, Any]:
        kind = self.cleaned_data.get("type")
        if self.cleaned_data.get("password") and kind and CONNECTION_TYPES[kind].secret is None:
            self.add_error("password", PASSWORD_NOT_TAKEN.format(type=kind))
        return super().clean()


class DataSourceForm(ServiceModelForm):
    new_destination_credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=SECRET_HELP + ' BigQuery service-account JSON, or "anonymous" (emulator).',
        label="Destination credentials",
    )
    clear_destination_credentials = forms.BooleanField(required=False)

    updatable_fields = services.data_sources.UPDATABLE_FIELDS
    secret_field = "destination_credentials"

    class Meta:
        model = DataSource
        exclude = ["destination_credentials"]

    def clean_new_destination_credentials(self) -> Any:
        return _json_object_or_string(
            self.cleaned_data["new_destination_credentials"], field="destination_credentials"
        )

    def service_validate(self) -> None:
        # contract errors (JobConfig) are shown on the form, next to the field they name
        services.data_source_validate(data_source=self.instance)

    def service_save(
        self, *, instance: DataSource | None, data: dict[str, Any], secret: Any, clear: bool
    ) -> DataSource:
        if instance is None:
            return services.data_source_create(**data, destination_credentials=secret)
        return services.data_source_update(
            data_source=instance,
            data=data,
            destination_credentials=secret,
            clear_destination_credentials=clear,
        )
