"""Domain errors raised by the core and translated at each edge (CLI exit code, HTTP status)."""

from __future__ import annotations

from typing import Any

#: A value quoted in an error message is cut to this many characters: a client's megabyte-long field
#: must not come back in full (or fill the log).
SHOWN_VALUE_CHARS = 80


def shown_value(value: Any) -> str:
    """``repr(value)`` for an error message, cut to :data:`SHOWN_VALUE_CHARS` with an ellipsis."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "..."


class CCError(Exception):
    """Base class of every error the core raises on purpose."""

    #: HTTP status an adapter should answer with.
    status = 500
    #: CLI exit code an adapter should exit with.
    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class InvalidInput(CCError):
    """Bad input; ``field`` names the offending field or key path."""

    status = 400
    exit_code = 2


class NotFound(CCError):
    status = 404
    exit_code = 3


class Conflict(CCError):
    """The request contradicts existing state (duplicate job, job already stopped, ...)."""

    status = 422
    exit_code = 4


class Busy(Conflict):
    """The operation is already in progress (upstream answers 409 Conflict, e.g. a tagger run)."""

    status = 409


class Forbidden(CCError):
    status = 403
    exit_code = 5


class ConfigError(CCError):
    """config.json or .env is wrong; the message names the file, the key path and what was expected."""

    exit_code = 78  # EX_CONFIG


class DatabaseVersionError(CCError):
    """The database schema is outdated, too new or dirty; the message names the flag that fixes it."""

    exit_code = 65


class ArchiveError(CCError):
    """The job archive is missing, has the wrong version or a file in it is broken."""

    exit_code = 66


class Unauthorized(CCError):
    """Authentication or admission failed (upstream answers 401 for both)."""

    status = 401
    exit_code = 77  # EX_NOPERM


class Unavailable(CCError):
    """A dependency (the database) does not answer."""

    status = 503
    exit_code = 69  # EX_UNAVAILABLE
