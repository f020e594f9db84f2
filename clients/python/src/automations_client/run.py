"""A training run: its state and its metrics, sent in the background."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
import warnings
from collections import deque
from types import TracebackType
from typing import Any, Deque, Dict, List, Mapping, Optional, Set, Tuple, Type

from .client import Client
from .errors import AutomationsError, AutomationsWarning
from .events import (
    MAX_STEP,
    RUN_STATES,
    batch_body,
    dumps,
    event_id_prefix,
    normalize_metrics,
    pack_requests,
    run_metrics_events,
    run_state_event,
    utc_timestamp,
)

__all__ = ["Run"]

logger = logging.getLogger("automations_client")

_PROJECT_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\Z")
_EVENT_INDEX_RE = re.compile(r"^events\[(\d+)\]")
# Points taken from the buffer per request (at most 1000 events once merged by step).
_TAKE = 1000
# A background request never waits longer than this for the server.
_MAX_BACKGROUND_TIMEOUT = 5.0
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0
_FINAL_STATES = tuple(s for s in RUN_STATES if s != "RUNNING")
# Distinct permanent errors logged at WARNING; later ones go to DEBUG.
_MAX_LOGGED_ERRORS = 20


def _check_text(what: str, value: Any, max_bytes: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("%s must be a non-empty string" % what)
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ValueError("%s must be at most %d bytes" % (what, max_bytes))
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("%s must not contain control characters" % what)
    return value


def _check_step(step: Any) -> int:
    """The step as an int, or TypeError/ValueError (the slow path of ``log``)."""
    if isinstance(step, bool) or type(step).__name__ in ("bool_", "bool8"):
        raise TypeError("step must be an int, not a bool")
    if type(step) is not int:
        index = getattr(step, "__index__", None)
        if index is None:
            raise TypeError("step must be an int, got %s" % type(step).__name__)
        step = index()
    if step < 0 or step > MAX_STEP:
        raise ValueError("step must be from 0 to 2**63 - 1, got %d" % step)
    return step


class Run:
    """A training run whose state and metrics go to the server in the background.

    Use it as a context manager::

        with Run(client, "train", name="sunny-1", user="alice") as run:
            for step in range(1000):
                run.log({"loss": loss, "acc": acc})

    or with :meth:`start` and :meth:`finish`. Entering (or ``start()``) queues
    ``RUN_STATE RUNNING``; leaving sends what is buffered, then ``RUN_STATE FINISHED`` (or
    ``FAILED`` when the block raised: the exception propagates unchanged).

    Args:
        client: the :class:`~automations_client.Client` to send with.
        project: the project (1 to 128 of ``[A-Za-z0-9._-]``, not starting with ``.``).
        name, user: the run's display name and user (optional, up to 256 bytes).
        run_id: the run's id (up to 128 bytes); default a random 16 hex digits.
        flush_interval: seconds between sends of what is buffered.
        batch_size: points buffered that trigger a send before the interval is up.
        max_buffer: points kept while they cannot be sent; past it the **oldest** are
            dropped (counted in :attr:`dropped`, one :class:`AutomationsWarning`).
        finish_timeout: seconds :meth:`finish` may take in all, whatever the server does.

    Never does ``log`` or ``start`` raise for a network reason, nor do they do I/O: one
    daemon thread per run sends, retries with exponential backoff (0.5 s doubling to 30
    s, with jitter; ``Retry-After`` on a 429), and is never waited for at interpreter exit.
    A *point* is one ``log()`` call; points of the same step sent together are merged into
    one ``RUN_METRICS`` event (split in several when over 500 metrics or 60 KiB).
    """

    def __init__(
        self,
        client: Client,
        project: str,
        name: Optional[str] = None,
        user: Optional[str] = None,
        run_id: Optional[str] = None,
        flush_interval: float = 1.0,
        batch_size: int = 500,
        max_buffer: int = 100_000,
        finish_timeout: float = 10.0,
    ) -> None:
        if not hasattr(client, "_post"):
            raise TypeError("client must be an automations_client.Client")
        if not isinstance(project, str) or not _PROJECT_RE.match(project):
            raise ValueError(
                "project must be 1 to 128 of letters, digits, '.', '_' or '-', not starting with '.'"
            )
        if run_id is None:
            run_id = uuid.uuid4().hex[:16]
        _check_text("run_id", run_id, 128)
        if name is not None:
            _check_text("name", name, 256)
        if user is not None:
            _check_text("user", user, 256)
        if not isinstance(flush_interval, (int, float)) or not flush_interval > 0:
            raise ValueError("flush_interval must be a positive number of seconds")
        if not isinstance(finish_timeout, (int, float)) or not finish_timeout >= 0:
            raise ValueError("finish_timeout must be a number of seconds, 0 or more")
        for what, value in (("batch_size", batch_size), ("max_buffer", max_buffer)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError("%s must be a positive int" % what)

        self.client = client
        self.project = project
        self.name = name
        self.user = user
        self.id = run_id
        self.flush_interval = float(flush_interval)
        self.batch_size = min(batch_size, max_buffer)
        self.max_buffer = max_buffer
        self.finish_timeout = float(finish_timeout)
        #: ``None`` before :meth:`start`, ``"RUNNING"``, then the state :meth:`finish` set.
        self.state: Optional[str] = None

        self._run: Dict[str, Any] = {"id": run_id, "name": name, "user": user}
        self._id_prefix = event_id_prefix(run_id)
        # Shared with log(): guarded by _lock.
        self._lock = threading.Lock()
        self._buf: Deque[Tuple[int, Dict[Any, Any]]] = deque()
        self._next_step = 0
        self._logged = 0
        self._dropped_full = 0
        self._dropped_late = 0
        self._warned_full = False
        self._warned_late = False
        self._started = False
        self._closed = False
        self._final_event: Optional[str] = None
        # Written by the sender thread only.
        self._states: Deque[str] = deque()
        self._final_taken = False
        self._final_done = False
        self._final_sent = False
        self._seq = 0
        self._inflight = 0
        self._sent = 0
        self._sent_events = 0
        self._duplicates = 0
        self._dropped_send = 0
        self._invalid = 0
        self._failed_attempts = 0
        self._failing_since: Optional[float] = None
        self._warned_invalid = False
        self._logged_errors: Set[Tuple[Any, ...]] = set()
        # Signals.
        self._wake = threading.Event()
        self._finish_evt = threading.Event()
        self._abort_evt = threading.Event()
        self._deadline: Optional[float] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return "Run(project=%r, id=%r, name=%r, state=%r)" % (self.project, self.id, self.name, self.state)

    # -- the user's side --------------------------------------------------------------

    def __enter__(self) -> "Run":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        try:
            self.finish("FAILED" if exc_type is not None else "FINISHED")
        except Exception:  # never mask the block's own exception, nor fail a good run
            logger.exception("automations: finishing run %s failed", self.id)
        return False

    def start(self) -> "Run":
        """Queues ``RUN_STATE RUNNING`` and starts the background sender; returns the run.

        Does no network I/O and never raises for a network reason. A second call does
        nothing."""
        with self._lock:
            if self._started or self._closed:
                return self
            self._started = True
        self.state = "RUNNING"
        self._states.append(
            dumps(run_state_event(self.project, self._run, "RUNNING", utc_timestamp(), self._id_prefix))
        )
        thread = threading.Thread(target=self._sender, name="automations-run-" + self.id[:32], daemon=True)
        self._thread = thread
        thread.start()
        return self

    def log(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        """Buffers one point: ``metrics`` at ``step``; returns at once.

        ``step`` defaults to one past the highest step logged so far (0 first). The dict is
        copied, so it may be reused. Values are checked in the background: numbers go,
        NaN and infinities as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; booleans,
        strings and other non-numbers are left out (counted in ``stats["invalid"]``, one
        warning logged), as are invalid names.

        Never does I/O and never raises for a network reason.

        Raises:
            TypeError: ``metrics`` is not a mapping, or ``step`` is not an int.
            ValueError: ``step`` is negative or over 2**63 - 1.
        """
        if type(metrics) is dict:
            metrics = metrics.copy()
        elif isinstance(metrics, Mapping):
            metrics = dict(metrics)
        else:
            raise TypeError("metrics must be a dict, got %s" % type(metrics).__name__)
        if step is not None and (type(step) is not int or step < 0 or step > MAX_STEP):
            step = _check_step(step)
        with self._lock:
            if step is None:
                step = self._next_step
            if step >= self._next_step:
                self._next_step = step + 1
            if not metrics:
                return
            buf = self._buf
            size = len(buf)
            if size >= self.max_buffer or self._closed:
                message = self._overflow(step, metrics)
                if message is None:
                    return
            else:
                buf.append((step, metrics))
                self._logged += 1
                if size + 1 != self.batch_size:
                    return
                message = None
        if message is None:
            self._wake.set()
        else:
            warnings.warn(message, AutomationsWarning, stacklevel=2)

    def _overflow(self, step: int, metrics: Dict[Any, Any]) -> Optional[str]:
        """log()'s slow path, under the lock: a finished run drops the point; a full
        buffer drops its oldest point and takes the new one. Returns the warning to
        emit, the first time only."""
        if self._closed:
            self._dropped_late += 1
            if self._warned_late:
                return None
            self._warned_late = True
            return "automations: run %s is finished; log() dropped the point" % self.id
        self._buf.popleft()
        self._buf.append((step, metrics))
        self._logged += 1
        self._dropped_full += 1
        if self._warned_full:
            return None
        self._warned_full = True
        return (
            "automations: run %s buffers %d points it could not send yet; "
            "dropping the oldest from now on (counted in run.dropped)" % (self.id, self.max_buffer)
        )

    def finish(self, state: str = "FINISHED") -> None:
        """Sends what is buffered, then ``RUN_STATE state``; returns within
        ``finish_timeout`` seconds whatever the server does (down, refusing, hanging).

        What could not be sent by then is counted in :attr:`dropped`. Never raises for a
        network reason; a second call does nothing.

        Raises:
            ValueError: ``state`` is not ``FINISHED``, ``FAILED`` or ``CRASHED``.
        """
        if state not in _FINAL_STATES:
            raise ValueError("state must be one of " + ", ".join(_FINAL_STATES))
        if self._finish_evt.is_set():
            return
        self.start()
        deadline = time.monotonic() + self.finish_timeout
        final = dumps(run_state_event(self.project, self._run, state, utc_timestamp(), self._id_prefix))
        with self._lock:
            if self._finish_evt.is_set():
                return
            self._deadline = deadline
            self._final_event = final
            self._closed = True
            self._finish_evt.set()
        self.state = state
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
            if thread.is_alive():
                self._abort_evt.set()
                logger.warning(
                    "automations: run %s: the server did not take the last events within %gs; "
                    "%d points and the %s state may be lost",
                    self.id,
                    self.finish_timeout,
                    self.pending,
                    state,
                )

    # -- counts -----------------------------------------------------------------------

    @property
    def sent(self) -> int:
        """Points the server accepted (or had already, as duplicates)."""
        return self._sent

    @property
    def dropped(self) -> int:
        """Points lost: the buffer was full (oldest dropped), the server refused them for
        good (a 4xx other than 408/429), all their values were invalid, they were logged
        after :meth:`finish`, or :meth:`finish` ran out of time."""
        return self._dropped_full + self._dropped_late + self._dropped_send

    @property
    def pending(self) -> int:
        """Points buffered or being sent."""
        return len(self._buf) + self._inflight

    @property
    def stats(self) -> Dict[str, int]:
        """A snapshot: ``logged``, ``sent``, ``dropped``, ``pending`` (points),
        ``invalid`` (metric values left out), ``events_sent``, ``duplicates`` (events the
        server already had: a retry of a request whose answer was lost) and
        ``failed_attempts``."""
        return {
            "logged": self._logged,
            "sent": self.sent,
            "dropped": self.dropped,
            "pending": self.pending,
            "invalid": self._invalid,
            "events_sent": self._sent_events,
            "duplicates": self._duplicates,
            "failed_attempts": self._failed_attempts,
        }

    # -- the sender thread ------------------------------------------------------------

    def _sender(self) -> None:
        while True:
            if not self._finish_evt.is_set():
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            try:
                if not self._send_buffered():
                    break
            except Exception:  # a bug must not kill the sender: count what it held, go on
                logger.exception("automations: run %s: sending failed", self.id)
                self._dropped_send += self._inflight
                self._inflight = 0
                if self._finish_evt.is_set():
                    break
                time.sleep(self.flush_interval)
            if self._final_done:
                break

    def _send_buffered(self) -> bool:
        """Sends until fewer than ``batch_size`` points are left (all when finishing).
        False when finish's deadline passed."""
        while True:
            requests = self._take()
            if not requests:
                return True
            for index, request in enumerate(requests):
                if not self._deliver(request):
                    for rest in requests[index + 1 :]:
                        self._dropped_send += sum(max(weight, 0) for _, weight in rest)
                    self._inflight = 0
                    self._report_unsent()
                    return False
            self._inflight = 0
            if self._final_done:
                return True
            if not self._finish_evt.is_set() and len(self._buf) < self.batch_size:
                return True

    def _take(self) -> List[List[Tuple[str, int]]]:
        """Moves up to 1000 points out of the buffer and makes requests of them, with the
        queued states (RUNNING first; the final state once the buffer is empty)."""
        with self._lock:
            count = min(len(self._buf), _TAKE)
            popleft = self._buf.popleft
            points = [popleft() for _ in range(count)]
            self._inflight = count
            last = self._closed and not self._buf and self._final_event is not None and not self._final_taken
            if last:
                self._final_taken = True
        events: List[Tuple[str, int]] = []
        while self._states:
            events.append((self._states.popleft(), 0))
        if points:
            events.extend(self._metrics_events(points))
        if last:
            assert self._final_event is not None
            events.append((self._final_event, -1))
        if not events:
            self._inflight = 0
            return []
        requests: List[List[Tuple[str, int]]] = []
        position = 0
        for chunk in pack_requests(encoded for encoded, _ in events):
            requests.append(events[position : position + len(chunk)])
            position += len(chunk)
        return requests

    def _metrics_events(self, points: List[Tuple[int, Dict[Any, Any]]]) -> List[Tuple[str, int]]:
        merged: Dict[int, Dict[Any, Any]] = {}
        weights: Dict[int, int] = {}
        for step, metrics in points:
            current = merged.get(step)
            if current is None:
                merged[step] = metrics
                weights[step] = 1
            else:
                current.update(metrics)
                weights[step] += 1
        out: List[Tuple[str, int]] = []
        for step, metrics in merged.items():
            values, rejected = normalize_metrics(metrics)
            if rejected:
                self._invalid += len(rejected)
                if not self._warned_invalid:
                    self._warned_invalid = True
                    logger.warning(
                        "automations: run %s step %d: left out metric(s) %s: a value must be a number "
                        "(not a bool or a string) and a name 1 to 256 bytes without control characters; "
                        "counted in run.stats['invalid'] (this is logged once)",
                        self.id,
                        step,
                        ", ".join(rejected[:5]),
                    )
            if not values:
                self._dropped_send += weights[step]
                self._inflight -= weights[step]
                continue
            encoded = run_metrics_events(self.project, self._run, step, values, self._seq, self._id_prefix)
            self._seq += len(encoded)
            out.append((encoded[0], weights[step]))
            out.extend((extra, 0) for extra in encoded[1:])
        return out

    def _timeout(self) -> Optional[float]:
        """This attempt's timeout; None once finish's deadline passed."""
        timeout = min(self.client.timeout, _MAX_BACKGROUND_TIMEOUT)
        deadline = self._deadline
        if deadline is None:
            return timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0.01 or self._abort_evt.is_set():
            return None
        return min(timeout, remaining)

    def _pause(self, delay: float) -> bool:
        """Waits ``delay`` before a retry; False once finish's deadline passed. A finish
        asked for during the wait cuts it short, for one more try at once."""
        if not self._finish_evt.is_set():
            self._finish_evt.wait(delay)
            return True
        deadline = self._deadline
        assert deadline is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0.01:
            return False
        self._abort_evt.wait(min(delay, remaining))
        return not self._abort_evt.is_set() and time.monotonic() < deadline - 0.01

    def _deliver(self, request: List[Tuple[str, int]]) -> bool:
        """Sends one request until it is accepted or refused for good; False (its points
        counted as dropped) when finish's deadline passed first."""
        request = list(request)
        attempt = 0
        while request:
            timeout = self._timeout()
            if timeout is None:
                self._drop(request)
                return False
            try:
                answer = self.client._post(batch_body([encoded for encoded, _ in request]), timeout=timeout)
            except AutomationsError as error:
                if error.retryable:
                    self._failed_attempts += 1
                    self._note_outage(error)
                    if error.retry_after is not None and error.status in (429, 503):
                        delay = error.retry_after + random.uniform(0.0, 0.25)
                    else:
                        ceiling = min(_BACKOFF_MAX, _BACKOFF_FIRST * (2 ** min(attempt, 16)))
                        delay = ceiling * random.uniform(0.5, 1.0)
                    attempt += 1
                    if not self._pause(delay):
                        self._drop(request)
                        return False
                    continue
                self._note_recovery()
                match = _EVENT_INDEX_RE.match(error.field or "") if error.status == 400 else None
                if match and int(match.group(1)) < len(request) and len(request) > 1:
                    bad = request.pop(int(match.group(1)))
                    self._note_refused(error, 1)
                    self._drop([bad])
                    continue
                if error.status == 413 and len(request) > 1:
                    half = len(request) // 2
                    if not self._deliver(request[:half]):
                        self._drop(request[half:])
                        return False
                    return self._deliver(request[half:])
                self._note_refused(error, len(request))
                self._drop(request)
                return True
            self._note_recovery()
            for _, weight in request:
                if weight > 0:
                    self._sent += weight
                    self._inflight -= weight
                elif weight < 0:
                    self._final_done = True
                    self._final_sent = True
            self._sent_events += len(request)
            duplicates = answer.get("duplicates")
            if isinstance(duplicates, list):
                self._duplicates += len(duplicates)
            return True
        return True

    def _drop(self, request: List[Tuple[str, int]]) -> None:
        for _, weight in request:
            if weight > 0:
                self._dropped_send += weight
                self._inflight -= weight
            elif weight < 0:
                self._final_done = True

    def _note_outage(self, error: AutomationsError) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            logger.warning(
                "automations: run %s: cannot send (%s); retrying with backoff, keeping up to %d points",
                self.id,
                error,
                self.max_buffer,
            )
        else:
            logger.debug("automations: run %s: still cannot send (%s)", self.id, error)

    def _note_recovery(self) -> None:
        if self._failing_since is not None:
            logger.info(
                "automations: run %s: the server answers again after %.1fs",
                self.id,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None

    def _note_refused(self, error: AutomationsError, events: int) -> None:
        key = (error.status, error.code, error.field)
        level = logging.DEBUG
        if key not in self._logged_errors and len(self._logged_errors) < _MAX_LOGGED_ERRORS:
            self._logged_errors.add(key)
            level = logging.WARNING
        logger.log(
            level,
            "automations: run %s: the server refused %d event(s) for good, dropping them: %s",
            self.id,
            events,
            error,
        )

    def _report_unsent(self) -> None:
        left = len(self._buf)
        with self._lock:
            self._dropped_send += len(self._buf)
            self._buf.clear()
        logger.warning(
            "automations: run %s: finish gave up after %gs; %d points%s were not sent",
            self.id,
            self.finish_timeout,
            left,
            "" if self._final_sent else " and the final state",
        )
