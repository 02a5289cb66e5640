"""DRF authentication classes for machine callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from ml_platform.auth.oidc import scheduler_token_verify


@dataclass(frozen=True)
class SchedulerPrincipal:
    """The Cloud Scheduler service account a verified token belongs to (not a Django user)."""

    email: str
    is_authenticated: bool = True
    is_staff: bool = False

    def __str__(self) -> str:
        return self.email


class SchedulerOidcAuthentication(BaseAuthentication):
    """`Authorization: Bearer <Google OIDC ID token>` as Cloud Scheduler sends it.

    No or another scheme: not attempted, so DRF answers 401 with `authenticate_header`. A bad
    token: 401; the certs endpoint unreachable: 503 (see `scheduler_token_verify`).
    """

    def authenticate(self, request: Request) -> tuple[SchedulerPrincipal, dict[str, Any]] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        claims = scheduler_token_verify(token=token.strip())
        return SchedulerPrincipal(email=claims["email"]), claims

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="scheduler-webhook"'
