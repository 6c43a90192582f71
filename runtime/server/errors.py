"""The one exception type the HTTP layer turns into an error response."""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses: `status` (400, 404, 413, 503...) and a message that
    names what was wrong. Answered as ``{"error": message}``."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)


def not_found(what):
    return RequestError(what, 404)


def brief(value, limit=60):
    """repr(value), cut to `limit` characters: client values quoted in error messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
