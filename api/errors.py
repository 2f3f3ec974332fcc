"""The API service's typed errors: one root, `ApiServiceError`, and a family per concern."""

from __future__ import annotations


class ApiServiceError(Exception):
    """Root of every error raised by the `api` package."""


class ConfigError(ApiServiceError):
    """Settings that cannot be used: a placeholder secret outside development, a bad URL."""


class MigrationError(ApiServiceError):
    """The database schema could not be brought to the current revision."""


class IngestError(ApiServiceError):
    """A failure of the ingest machinery itself (not a rejected message: those are outcomes)."""
