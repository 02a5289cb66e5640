"""Verify the Google-signed OIDC ID tokens of machine callers: Cloud Scheduler's webhook
deliveries and, with their own audience and allow-list, Cloud Run Job runners.

google-auth checks the RS256 signature against the certs at `SCHEDULER_OIDC_CERTS_URL`
(`{kid: x509 PEM}` JSON), `iat`/`exp` with `SCHEDULER_OIDC_CLOCK_SKEW_S` seconds of skew and
`aud` == `SCHEDULER_OIDC_AUDIENCE`; the issuer, `email_verified` and the allow-list
`SCHEDULER_OIDC_ALLOWED_EMAILS` are checked here. Fetched certs are cached per URL for the
response's `Cache-Control: max-age` (Google rotates keys with overlap, so a cached set stays
valid for its max-age).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.oauth2 import id_token
from rest_framework import exceptions, status

logger = structlog.get_logger(__name__)

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})

SCHEDULER_NOT_CONFIGURED = (
    "Scheduler webhook is not configured: set SCHEDULER_OIDC_AUDIENCE and "
    "SCHEDULER_OIDC_ALLOWED_EMAILS."
)
RUNNER_NOT_CONFIGURED = (
    "Runner ID tokens are not accepted: set ETL_RUNNER_OIDC_AUDIENCE and ETL_RUNNER_ALLOWED_EMAILS."
)
TOKEN_INVALID = "Invalid {kind} ID token: {reason}."
TOKEN_WRONG_ISSUER = "Invalid {kind} ID token: issuer {issuer!r} is not Google."
TOKEN_EMAIL_UNVERIFIED = "Invalid {kind} ID token: email_verified is not true."
TOKEN_EMAIL_NOT_ALLOWED = "{Kind} ID token email {email!r} is not in the allow-list."
CERTS_UNAVAILABLE = "Google's signing certificates cannot be fetched; retry later."

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class CertsUnavailable(exceptions.APIException):
    """The certs endpoint did not answer: 503 (the sender retries), not 401."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = CERTS_UNAVAILABLE
    default_code = "certs_unavailable"


@dataclass(frozen=True)
class _CachedResponse:
    """The parts of a `google.auth.transport.Response` that `verify_token` reads."""

    status: int
    headers: dict[str, str]
    data: bytes


class CertsCache:
    """GET responses (status 200 only) kept per URL until their `max-age` expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, _CachedResponse]] = {}

    def get(self, url: str) -> _CachedResponse | None:
        with self._lock:
            entry = self._entries.get(url)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, url: str, response: _CachedResponse, *, default_ttl_s: float) -> None:
        cache_control = response.headers.get("cache-control", "")
        if re.search(r"no-store|no-cache", cache_control, re.IGNORECASE):
            return
        match = _MAX_AGE.search(cache_control)
        ttl = float(match.group(1)) if match else default_ttl_s
        if ttl <= 0:
            return
        with self._lock:
            self._entries[url] = (time.monotonic() + ttl, response)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CERTS_CACHE = CertsCache()
"""Process-wide cache of fetched certs (one entry per certs URL)."""


class _CachingRequest(transport.Request):
    """A google-auth transport answering GETs from `CERTS_CACHE` when fresh."""

    def __init__(self, *, timeout_s: float, default_ttl_s: float) -> None:
        from google.auth.transport.requests import Request

        self._inner = Request()
        self.timeout_s, self.default_ttl_s = timeout_s, default_ttl_s

    def __call__(  # type: ignore[override]
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        if method == "GET":
            cached = CERTS_CACHE.get(url)
            if cached is not None:
                return cached
        response = self._inner(
            url, method=method, body=body, headers=headers, timeout=self.timeout_s, **kwargs
        )
        if method != "GET" or response.status != 200:
            return response
        kept = _CachedResponse(
            status=response.status,
            headers={key.lower(): value for key, value in dict(response.headers).items()},
            data=response.data,
        )
        CERTS_CACHE.put(url, kept, default_ttl_s=self.default_ttl_s)
        logger.info("scheduler_oidc.certs_fetched", certs_url=url)
        return kept


def scheduler_token_verify(*, token: str) -> dict[str, Any]:
    """Verify a Cloud Scheduler OIDC ID token and return its claims.

    Settings: `SCHEDULER_OIDC_AUDIENCE`, `SCHEDULER_OIDC_ALLOWED_EMAILS`,
    `SCHEDULER_OIDC_CERTS_URL`, `SCHEDULER_OIDC_CLOCK_SKEW_S`, `SCHEDULER_OIDC_CERTS_TIMEOUT_S`.

    Returns:
        The token's claims (`email`, `aud`, `iss`, `exp`, ...).

    Raises:
        AuthenticationFailed: bad signature, unknown key id, expired, wrong audience or issuer,
            email not verified or not allowed, malformed token, or the webhook not configured.
        CertsUnavailable: the certs endpoint cannot be reached or did not answer 200.
    """
    return google_id_token_verify(
        token=token,
        audience=settings.SCHEDULER_OIDC_AUDIENCE,
        allowed_emails=settings.SCHEDULER_OIDC_ALLOWED_EMAILS,
        kind="scheduler",
        not_configured=SCHEDULER_NOT_CONFIGURED,
    )


def runner_token_verify(*, token: str) -> dict[str, Any]:
    """Verify the Google ID token of a Cloud Run Job runner (its service account) and return
    its claims.

    Settings: `ETL_RUNNER_OIDC_AUDIENCE`, `ETL_RUNNER_ALLOWED_EMAILS`; certs, skew and timeout
    are the scheduler webhook's (`SCHEDULER_OIDC_CERTS_URL`, ...).

    Raises:
        AuthenticationFailed: as `scheduler_token_verify`, or runner ID tokens not configured.
        CertsUnavailable: the certs endpoint cannot be reached or did not answer 200.
    """
    return google_id_token_verify(
        token=token,
        audience=settings.ETL_RUNNER_OIDC_AUDIENCE,
        allowed_emails=settings.ETL_RUNNER_ALLOWED_EMAILS,
        kind="runner",
        not_configured=RUNNER_NOT_CONFIGURED,
    )


def google_id_token_verify(
    *, token: str, audience: str, allowed_emails: list[str], kind: str, not_configured: str
) -> dict[str, Any]:
    """Verify a Google-signed ID token for `audience` whose `email` is in `allowed_emails`.

    Args:
        token: the compact JWT.
        audience: required `aud`; empty refuses every token (`not_configured`).
        allowed_emails: allowed `email` claims (case-insensitive); empty refuses every token.
        kind: who sends it ("scheduler", "runner"), named in the error messages.
        not_configured: the 401 message when `audience` or `allowed_emails` is empty.

    Returns:
        The token's claims.

    Raises:
        AuthenticationFailed: see `scheduler_token_verify`.
        CertsUnavailable: the certs endpoint cannot be reached or did not answer 200.
    """
    allowed = {email.strip().lower() for email in allowed_emails if email}
    if not audience or not allowed:
        raise exceptions.AuthenticationFailed(not_configured)
    request = _CachingRequest(
        timeout_s=float(settings.SCHEDULER_OIDC_CERTS_TIMEOUT_S),
        default_ttl_s=float(settings.SCHEDULER_OIDC_CERTS_DEFAULT_TTL_S),
    )
    try:
        claims = dict(
            id_token.verify_token(
                token,
                request,
                audience=audience,
                certs_url=settings.SCHEDULER_OIDC_CERTS_URL,
                clock_skew_in_seconds=int(settings.SCHEDULER_OIDC_CLOCK_SKEW_S),
            )
        )
    except google_exceptions.TransportError as exc:
        logger.error("oidc.certs_unavailable", kind=kind, error=str(exc)[:300])
        raise CertsUnavailable() from exc
    except (ValueError, TypeError, google_exceptions.GoogleAuthError) as exc:
        raise exceptions.AuthenticationFailed(
            TOKEN_INVALID.format(kind=kind, reason=_reason(exc))
        ) from exc
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise exceptions.AuthenticationFailed(
            TOKEN_WRONG_ISSUER.format(kind=kind, issuer=claims.get("iss"))
        )
    if claims.get("email_verified") is not True:
        raise exceptions.AuthenticationFailed(TOKEN_EMAIL_UNVERIFIED.format(kind=kind))
    email = str(claims.get("email") or "")
    if email.lower() not in allowed:
        raise exceptions.AuthenticationFailed(
            TOKEN_EMAIL_NOT_ALLOWED.format(Kind=kind.capitalize(), email=email)
        )
    return claims


TOKEN_REASONS = (
    ("wrong audience", "audience mismatch"),
    ("token expired", "expired"),
    ("used too early", "issued in the future (check the clock)"),
    ("could not verify token signature", "bad signature"),
    ("certificate for key id", "unknown signing key id"),
    ("unsupported signature algorithm", "unsupported signature algorithm"),
    ("does not match signature algorithm", "unsupported signature algorithm"),
    ("does not contain required claim", "required claim missing"),
)
"""google-auth's error text -> what a 401 says failed. Only the kind of failure is told: the
original text carries the configured audience, the token itself or timestamps."""


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    for needle, reason in TOKEN_REASONS:
        if needle in text:
            return reason
    return "malformed token"
