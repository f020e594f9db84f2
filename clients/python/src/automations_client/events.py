"""Building the events the server takes: ids, metric values, ``RUN_STATE`` and ``RUN_METRICS``.

Everything here is pure (no I/O) and is what :class:`automations_client.Run` uses; it is
public so that producers that build their own events can reuse it with
:meth:`automations_client.Client.send_many`.

Server limits mirrored here (see the server's README, "Limits"):

- an event id is 1 to 128 of ``[A-Za-z0-9._:-]``;
- a ``RUN_METRICS`` event holds 1 to 500 metrics, names of 1 to 256 bytes without control
  characters, values that are JSON numbers or the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``; ``step`` is 0 to 2**63 - 1;
- an event is at most 64 KiB of JSON, a request body at most 1 MiB, a request at most 1000
  events.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = [
    "MAX_EVENTS_PER_REQUEST",
    "MAX_METRICS_PER_EVENT",
    "MAX_METRIC_NAME_BYTES",
    "MAX_EVENT_ID_LENGTH",
    "MAX_STEP",
    "RUN_STATES",
    "dumps",
    "event_id_prefix",
    "is_valid_event_id",
    "metric_value",
    "normalize_metrics",
    "run_metrics_events",
    "run_state_event",
    "utc_timestamp",
    "valid_metric_name",
]

MAX_EVENTS_PER_REQUEST = 1000
MAX_METRICS_PER_EVENT = 500
MAX_METRIC_NAME_BYTES = 256
MAX_EVENT_ID_LENGTH = 128
MAX_STEP = 2**63 - 1
#: The states a run can enter (``CRASHED`` is read as ``FAILED`` by the server).
RUN_STATES = ("RUNNING", "FINISHED", "FAILED", "CRASHED")

# The server refuses an event over 64 KiB as it re-serializes it (with a few fields of its
# own added) and a body over 1 MiB: stay clearly below both.
MAX_EVENT_BYTES = 60 * 1024
MAX_REQUEST_BYTES = 1_000_000

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
# The longest run id used verbatim in event ids: leaves room for ".m.{step}.{n}" (at most
# 3 + 19 + 1 + 20 characters) within 128.
_MAX_ID_PREFIX = 80
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

Number = Union[int, float, str]


def dumps(obj: Any) -> str:
    """Serializes ``obj`` as strict JSON (compact, ASCII).

    Non-finite floats anywhere in ``obj`` become the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, which is how the server takes them (bare ``NaN`` is not JSON).
    """
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_replace_non_finite(obj), allow_nan=False, separators=(",", ":"))


def _replace_non_finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return _non_finite_name(obj) if not math.isfinite(obj) else obj
    if isinstance(obj, Mapping):
        return {k: _replace_non_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_replace_non_finite(v) for v in obj]
    return obj


def _non_finite_name(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def metric_value(value: Any) -> Optional[Number]:
    """The JSON form of one metric value, or ``None`` when it is not a number.

    - ``int`` and ``float`` pass through; NaN and infinities become ``"NaN"``,
      ``"Infinity"``, ``"-Infinity"``; an int too large for 64 bits becomes a float (or an
      infinity when it does not fit a float either).
    - Booleans (``True``/``False``, and NumPy's ``bool_``) are **not** numbers: ``None``
      (the metric is left out of the event).
    - Strings are ``None``, except exactly ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
    - Anything else with ``__float__`` (NumPy scalars, ``Decimal``, ``Fraction``, 0-d
      tensors) is converted with ``float()``; if that fails, ``None``.
    """
    kind = type(value)
    if kind is float:
        if value - value == 0.0:  # finite (inf - inf and nan - nan are NaN)
            return value
        return _non_finite_name(value)
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return "Infinity" if value > 0 else "-Infinity"
    if kind is bool or isinstance(value, bool) or kind.__name__ in ("bool", "bool_", "bool8"):
        return None
    if isinstance(value, str):
        return value if value in ("NaN", "Infinity", "-Infinity") else None
    if isinstance(value, (bytes, bytearray)):
        return None
    try:
        converted = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    except Exception:  # a foreign object's __float__ may raise anything
        return None
    if math.isfinite(converted):
        return converted
    return _non_finite_name(converted)


def valid_metric_name(name: Any) -> bool:
    """Whether ``name`` is a metric name the server takes: a ``str`` of 1 to 256 UTF-8
    bytes with no control character (``train/loss`` and ``val acc`` are fine)."""
    if type(name) is not str or not name:
        return False
    if len(name) > MAX_METRIC_NAME_BYTES or (
        not name.isascii() and len(name.encode("utf-8", "surrogatepass")) > MAX_METRIC_NAME_BYTES
    ):
        return False
    if name.isprintable():
        return True
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs"):
            return False
    return True


def normalize_metrics(metrics: Mapping[Any, Any]) -> Tuple[Dict[str, Number], List[str]]:
    """Splits ``metrics`` into the values that can be sent and the names of those that
    cannot.

    Returns ``(values, rejected)``: ``values`` maps each valid name to its JSON value (see
    :func:`metric_value`); ``rejected`` lists (as ``repr``) the names whose name or value
    is invalid, e.g. a boolean value, a string, an empty name.
    """
    values: Dict[str, Number] = {}
    rejected: List[str] = []
    for name, value in metrics.items():
        converted = metric_value(value)
        if converted is None or not valid_metric_name(name):
            rejected.append(repr(name)[:80])
        else:
            values[name] = converted
    return values, rejected


def is_valid_event_id(event_id: Any) -> bool:
    """Whether ``event_id`` is 1 to 128 of ``[A-Za-z0-9._:-]``."""
    return isinstance(event_id, str) and _ID_RE.match(event_id) is not None


def event_id_prefix(run_id: str) -> str:
    """The part of a run's event ids that names the run.

    The run id itself when it is at most 80 characters of ``[A-Za-z0-9._:-]``; otherwise a
    readable part of it (other characters as ``_``, at most 48) and 20 hex digits of its
    SHA-256, so that every id stays within the server's charset and 128 characters.
    """
    if len(run_id) <= _MAX_ID_PREFIX and _ID_RE.match(run_id):
        return run_id
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9._:-]", "_", run_id)[:48]
    return readable + "." + digest if readable else digest


def utc_timestamp(when: Optional[datetime] = None) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-23T18:00:00.123Z``."""
    moment = when if when is not None else datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _run_object(run: Mapping[str, Any], state: Optional[str] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"id": run["id"]}
    for field in ("name", "user"):
        value = run.get(field)
        if value is not None:
            out[field] = value
    if state is not None:
        out["state"] = state
    return out


def run_state_event(
    project: str,
    run: Mapping[str, Any],
    state: str,
    timestamp: Optional[str] = None,
    id_prefix: Optional[str] = None,
) -> Dict[str, Any]:
    """A ``RUN_STATE`` event with the id ``{prefix}.state.{STATE}``.

    ``run`` holds ``id`` and optionally ``name`` and ``user``; ``state`` is one of
    :data:`RUN_STATES`.
    """
    if state not in RUN_STATES:
        raise ValueError("state must be one of " + ", ".join(RUN_STATES))
    prefix = id_prefix if id_prefix is not None else event_id_prefix(run["id"])
    event: Dict[str, Any] = {
        "id": prefix + ".state." + state,
        "event_type": "RUN_STATE",
        "project": project,
        "run": _run_object(run, state),
    }
    if timestamp is not None:
        event["timestamp"] = timestamp
    return event


def run_metrics_events(
    project: str,
    run: Mapping[str, Any],
    step: int,
    values: Mapping[str, Number],
    first_seq: int,
    id_prefix: Optional[str] = None,
) -> List[str]:
    """The ``RUN_METRICS`` events of one step, already serialized as JSON.

    ``values`` must be normalized (see :func:`normalize_metrics`). They are split into as
    many events as needed to hold at most 500 metrics and 60 KiB each. The events get the
    ids ``{prefix}.m.{step}.{seq}`` with ``seq`` counting up from ``first_seq``: the caller
    keeps a counter so that two events of the same step sent separately never share an
    id, while a retry of the same serialized event keeps its id and is accepted once.
    """
    prefix = id_prefix if id_prefix is not None else event_id_prefix(run["id"])
    run_obj = _run_object(run)
    names = list(values)
    out: List[str] = []
    seq = first_seq
    pending = [names[i : i + MAX_METRICS_PER_EVENT] for i in range(0, len(names), MAX_METRICS_PER_EVENT)]
    pending.reverse()
    while pending:
        part = pending.pop()
        event = {
            "id": prefix + ".m." + str(step) + "." + str(seq),
            "event_type": "RUN_METRICS",
            "project": project,
            "run": run_obj,
            "step": step,
            "metrics": {name: values[name] for name in part},
        }
        encoded = json.dumps(event, allow_nan=False, separators=(",", ":"))
        if len(encoded) > MAX_EVENT_BYTES and len(part) > 1:
            half = len(part) // 2
            pending.append(part[half:])
            pending.append(part[:half])
            continue
        out.append(encoded)
        seq += 1
    return out


def pack_requests(
    encoded_events: Iterable[str],
    max_events: int = MAX_EVENTS_PER_REQUEST,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> List[List[str]]:
    """Groups serialized events into request-sized lists: at most ``max_events`` events and
    ``max_bytes`` of body each (an event larger than that alone gets its own request)."""
    requests: List[List[str]] = []
    current: List[str] = []
    size = 0
    overhead = len('{"events":[]}')
    for encoded in encoded_events:
        extra = len(encoded) + (1 if current else 0)
        if current and (len(current) >= max_events or overhead + size + extra > max_bytes):
            requests.append(current)
            current = []
            size = 0
            extra = len(encoded)
        current.append(encoded)
        size += extra
    if current:
        requests.append(current)
    return requests


def batch_body(encoded_events: List[str]) -> bytes:
    """The request body ``{"events": [...]}`` of serialized events."""
    return ('{"events":[' + ",".join(encoded_events) + "]}").encode("ascii")
