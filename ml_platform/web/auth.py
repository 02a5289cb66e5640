"""Access to the web pages: active staff users, through Django's login page."""

from django.contrib.auth.decorators import user_passes_test

staff_required = user_passes_test(lambda user: user.is_active and user.is_staff)
"""Decorate a view: anyone else is sent to `settings.LOGIN_URL` (Django's login page)."""
