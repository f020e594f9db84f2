"""The HTTP client: sends events to ``POST /v1/teams/{team}/events``."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._version import __version__
from .errors import AutomationsError
from .events import batch_body, dumps, pack_requests

__all__ = ["Client", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:8080"
_TEAM_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\Z")
# Enough of an answer to read an error or a 1000-id acceptance; more is not read.
_MAX_ANSWER_BYTES = 4 * 1024 * 1024


class _Secret:
    """Holds the API key so that no ``repr``, ``vars()`` dump or debugger shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("an API key is not picklable")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follows a redirect: a redirected POST would become a GET elsewhere, and the
    key must only go to the URL it was given for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:
        return None
    return max(0.0, seconds)


class Client:
    """Sends events to an automations server.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8080``; default ``$AUTOMATIONS_URL`` or
            ``http://127.0.0.1:8080``.
        key: an API key of the team (role ``ingest`` is enough); default
            ``$AUTOMATIONS_KEY``.
        team: the team's name; default ``$AUTOMATIONS_TEAM``.
        timeout: seconds one request may take (connect and each read).

    Raises:
        ValueError: no key or team (the message names the environment variable), or an
            invalid url, team or timeout.

    The key is sent only as ``Authorization: Bearer`` to ``url`` (redirects are not
    followed) and is never part of a ``repr``, an error or a log line. Proxies from the
    environment (``HTTP_PROXY``, ``NO_PROXY``, ...) are used as urllib does, except for a
    loopback server, which is always reached directly.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        key: Optional[str] = None,
        team: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        if url is None:
            url = os.environ.get("AUTOMATIONS_URL") or DEFAULT_URL
        if key is None:
            key = os.environ.get("AUTOMATIONS_KEY")
        if team is None:
            team = os.environ.get("AUTOMATIONS_TEAM")
        if not key:
            raise ValueError("no API key: pass key= or set AUTOMATIONS_KEY")
        if not team:
            raise ValueError("no team: pass team= or set AUTOMATIONS_TEAM")
        if not isinstance(key, str) or any(ord(c) < 0x21 or ord(c) == 0x7F for c in key):
            raise ValueError("the API key must be a string without spaces or control characters")
        if not isinstance(team, str) or not _TEAM_RE.match(team):
            raise ValueError(
                "team must be 1 to 128 of letters, digits, '.', '_' or '-', not starting with '.'"
            )
        if not isinstance(url, str):
            raise ValueError("url must be a string such as http://127.0.0.1:8080")
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL such as http://127.0.0.1:8080")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("url must not carry a query, a fragment or credentials")
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            raise ValueError("timeout must be a number of seconds") from None
        if not timeout > 0 or timeout == float("inf"):
            raise ValueError("timeout must be a positive number of seconds")

        self._url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._team = team
        self._key = _Secret(key)
        self.timeout = timeout
        self._events_url = "%s/v1/teams/%s/events" % (self._url, team)
        handlers: List[Any] = [_NoRedirect()]
        if _is_loopback(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._url

    @property
    def team(self) -> str:
        """The team events are sent to."""
        return self._team

    def __repr__(self) -> str:
        return "Client(url=%r, team=%r, key=<hidden>, timeout=%r)" % (self._url, self._team, self.timeout)

    # -- sending ----------------------------------------------------------------------

    def send(self, event: Mapping[str, Any]) -> Dict[str, Any]:
        """Sends one event; returns the server's ``{"accepted": [...], "duplicates": [...]}``.

        Non-finite floats are sent as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; nothing
        else is changed (the server validates the event: a 400 names the field).

        Raises:
            TypeError: ``event`` is not a mapping.
            AutomationsError: the server refused it, or could not be reached.
        """
        if not isinstance(event, Mapping):
            raise TypeError("event must be a dict, got %s" % type(event).__name__)
        return self._post(dumps(dict(event)).encode("ascii"))

    def send_many(self, events: Sequence[Mapping[str, Any]]) -> Dict[str, List[str]]:
        """Sends events as ``{"events": [...]}`` requests of at most 1000 events (and under
        the server's 1 MiB body limit), one after another, and merges the answers.

        Returns ``{"accepted": [...], "duplicates": [...]}`` over all requests.

        Raises:
            TypeError: ``events`` is not a list of mappings.
            AutomationsError: a request failed; the requests before it stand, and the
                error's ``accepted`` and ``duplicates`` list what they got in.
        """
        if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
            raise TypeError("events must be a list of dicts")
        encoded: List[str] = []
        for index, event in enumerate(events):
            if not isinstance(event, Mapping):
                raise TypeError("events[%d] must be a dict, got %s" % (index, type(event).__name__))
            encoded.append(dumps(dict(event)))
        merged: Dict[str, List[str]] = {"accepted": [], "duplicates": []}
        for chunk in pack_requests(encoded):
            try:
                answer = self._post(batch_body(chunk))
            except AutomationsError as error:
                error.accepted = list(merged["accepted"])
                error.duplicates = list(merged["duplicates"])
                raise
            merged["accepted"].extend(answer.get("accepted") or [])
            merged["duplicates"].extend(answer.get("duplicates") or [])
        return merged

    # -- transport --------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        key = self._key.reveal()
        return text.replace(key, "***") if key and key in text else text

    def _post(self, body: bytes, timeout: Optional[float] = None) -> Dict[str, Any]:
        """POSTs a JSON body to the events route; returns the decoded 2xx answer."""
        request = urllib.request.Request(
            self._events_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "automations-client-python/" + __version__,
            },
        )
        request.add_unredirected_header("Authorization", "Bearer " + self._key.reveal())
        wait = self.timeout if timeout is None else timeout
        try:
            with self._opener.open(request, timeout=wait) as response:
                status = response.status
                raw = response.read(_MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as error:
            raise self._http_error(error) from None
        except (socket.timeout, TimeoutError):
            raise AutomationsError(
                "no answer from %s within %gs" % (self._url, wait), code="timeout"
            ) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise AutomationsError(
                    "no answer from %s within %gs" % (self._url, wait), code="timeout"
                ) from None
            raise AutomationsError(
                self._scrub("cannot reach %s: %s" % (self._url, reason)), code="network"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise AutomationsError(
                self._scrub("connection to %s failed: %s" % (self._url, error or type(error).__name__)),
                code="network",
            ) from None
        if not 200 <= status < 300:
            raise AutomationsError("unexpected HTTP %d from the server" % status, status=status, code="bad_response")
        try:
            answer = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            raise AutomationsError(
                "the server's answer is not JSON", status=status, code="bad_response"
            ) from None
        if not isinstance(answer, dict):
            raise AutomationsError("the server's answer is not a JSON object", status=status, code="bad_response")
        return answer

    def _http_error(self, error: urllib.error.HTTPError) -> AutomationsError:
        status = error.code
        retry_after = _parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
        code: Optional[str] = None
        message: Optional[str] = None
        field: Optional[str] = None
        try:
            raw = error.read(64 * 1024)
        except Exception:  # the body of an error answer is a courtesy
            raw = b""
        finally:
            try:
                error.close()
            except Exception:
                pass
        try:
            parsed = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            detail = parsed["error"]
            code = detail.get("code") if isinstance(detail.get("code"), str) else None
            message = detail.get("message") if isinstance(detail.get("message"), str) else None
            field = detail.get("field") if isinstance(detail.get("field"), str) else None
        if message is None:
            text = raw.decode("utf-8", "replace").strip()[:200] if raw else ""
            message = text or (error.reason if isinstance(error.reason, str) else "") or "HTTP %d" % status
        return AutomationsError(
            self._scrub(message),
            status=status,
            code=code or "http_%d" % status,
            field=self._scrub(field) if field else None,
            retry_after=retry_after,
        )
