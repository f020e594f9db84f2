"""The error the client raises, and the warning category it emits."""

from __future__ import annotations

from typing import List, Optional

__all__ = ["AutomationsError", "AutomationsWarning"]


class AutomationsWarning(UserWarning):
    """Emitted (once per run) when a :class:`~automations_client.Run` drops points."""


class AutomationsError(Exception):
    """A request the server refused, or that could not reach it.

    Attributes:
        status: the HTTP status, or ``None`` for a network error (refused, timed out,
            unreadable answer).
        code: the server's error code (``invalid_request``, ``unauthorized``, ...), or
            ``"network"`` / ``"timeout"`` / ``"bad_response"`` for errors of the client.
        message: what went wrong, in words.
        field: the field a 400 names (``events[3].metrics.loss``), else ``None``.
        retry_after: for a 429 (or 503), the seconds the server asks to wait
            (``Retry-After``), else ``None``.
        accepted, duplicates: for :meth:`~automations_client.Client.send_many`, the event
            ids the requests before the failing one got accepted (or found duplicate);
            empty otherwise.

    No API key is ever part of its message or ``repr``.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        code: Optional[str] = None,
        field: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.retry_after = retry_after
        self.accepted: List[str] = []
        self.duplicates: List[str] = []

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again later may succeed: network errors,
        408, 429 and 5xx."""
        return self.status is None or self.status in (408, 429) or self.status >= 500

    def __str__(self) -> str:
        where = "network error" if self.status is None else "HTTP %d" % self.status
        text = "%s %s: %s" % (where, self.code or "error", self.message)
        if self.field:
            text += " (field: %s)" % self.field
        if self.retry_after is not None:
            text += " (retry after %gs)" % self.retry_after
        return text

    def __repr__(self) -> str:
        return "AutomationsError(status=%r, code=%r, message=%r, field=%r, retry_after=%r)" % (
            self.status,
            self.code,
            self.message,
            self.field,
            self.retry_after,
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (
            AutomationsError,
            (self.message, self.status, self.code, self.field, self.retry_after),
        )
