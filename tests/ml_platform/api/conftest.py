"""API clients: a staff user authenticated by DRF token, a non-staff user, nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def staff_client(db: None) -> APIClient:
    """A client sending `Authorization: Token <key>` of a staff user."""
    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def user_client(db: None) -> APIClient:
    """A client logged in (session) as a user who is not staff."""
    user = get_user_model().objects.create_user("viewer", password="x", is_staff=False)
    client = APIClient()
    client.force_login(user)
    return client
