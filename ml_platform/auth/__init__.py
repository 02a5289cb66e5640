"""Authentication of machine callers: the Cloud Scheduler OIDC webhook, the runner token."""
