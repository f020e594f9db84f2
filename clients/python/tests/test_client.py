"""The Client, the event helpers, errors; the real server where a server is needed."""

from __future__ import annotations

import json
import math
import pickle
import random
import string
import warnings
from decimal import Decimal
from fractions import Fraction

import pytest

from automations_client import AutomationsError, AutomationsWarning, Client, Run
from automations_client import events as ev
from conftest import HangingServer, Server, Team

SECRET = "atm_" + "Q" * 43


# -- values ---------------------------------------------------------------------------


def test_non_finite_values_become_strings_and_the_json_is_strict() -> None:
    values, rejected = ev.normalize_metrics(
        {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "ok": 0.31, "int": 3}
    )
    assert values == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "ok": 0.31, "int": 3}
    assert rejected == []
    encoded = ev.run_metrics_events("train", {"id": "r"}, 1, values, 0)
    assert len(encoded) == 1
    # strict JSON: no bare NaN / Infinity
    decoded = json.loads(encoded[0], parse_constant=lambda c: pytest.fail("bare %s in JSON" % c))
    assert decoded["metrics"]["nan"] == "NaN" and decoded["metrics"]["ninf"] == "-Infinity"
    assert ev.dumps({"a": [float("nan"), {"b": float("inf")}]}) == '{"a":["NaN",{"b":"Infinity"}]}'


def test_metric_values_bools_and_other_types() -> None:
    # booleans are not numbers: left out (and counted by a Run)
    assert ev.metric_value(True) is None and ev.metric_value(False) is None
    assert ev.metric_value("0.5") is None and ev.metric_value(None) is None and ev.metric_value(b"1") is None
    assert ev.metric_value("NaN") == "NaN"
    assert ev.metric_value(Decimal("1.5")) == 1.5 and ev.metric_value(Fraction(1, 4)) == 0.25
    assert ev.metric_value(2**70) == float(2**70)
    assert ev.metric_value(10**400) == "Infinity" and ev.metric_value(-(10**400)) == "-Infinity"
    assert ev.metric_value(-(2**63)) == -(2**63)
    assert ev.metric_value(-0.0) == 0.0
    _, rejected = ev.normalize_metrics({"flag": True, "": 1.0, "bad\nname": 1.0, "x" * 257: 1.0, 5: 1.0, "ok": 1})
    assert len(rejected) == 5
    assert ev.valid_metric_name("train/loss") and ev.valid_metric_name("val acc") and ev.valid_metric_name("é" * 128)
    assert not ev.valid_metric_name("é" * 129)  # 258 bytes


def test_event_ids_fit_the_charset_and_128_characters() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "éü漢字\u200b"
    run_ids = ["3kx9", "a" * 80, "a" * 81, "b" * 128, "with space", "slash/and:colon", "ü" * 60, "."]
    run_ids += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 128))) for _ in range(300)]
    seen = set()
    for run_id in run_ids:
        run = {"id": run_id}
        prefix = ev.event_id_prefix(run_id)
        seen.add(prefix)
        ids = [json.loads(e)["id"] for e in ev.run_metrics_events("p", run, ev.MAX_STEP, {"loss": 1.0}, 10**20)]
        ids += [ev.run_state_event("p", run, state)["id"] for state in ev.RUN_STATES]
        for event_id in ids:
            assert ev.is_valid_event_id(event_id), event_id
            assert len(event_id) <= 128
    assert len(seen) == len(set(run_ids))  # distinct runs, distinct prefixes
    assert ev.event_id_prefix("3kx9") == "3kx9"


def test_a_step_with_many_or_long_metrics_is_split_into_valid_events() -> None:
    many = {"m%d" % i: float(i) for i in range(1200)}
    encoded = ev.run_metrics_events("p", {"id": "r"}, 3, many, 0)
    assert [len(json.loads(e)["metrics"]) for e in encoded] == [500, 500, 200]
    long_names = {("n%03d" % i) + "x" * 252: 1.0 for i in range(500)}
    encoded = ev.run_metrics_events("p", {"id": "r"}, 3, long_names, 7)
    assert len(encoded) > 1 and all(len(e) <= ev.MAX_EVENT_BYTES for e in encoded)
    ids = [json.loads(e)["id"] for e in encoded]
    assert len(set(ids)) == len(ids) and ids[0] == "r.m.3.7"
    merged = {}
    for e in encoded:
        merged.update(json.loads(e)["metrics"])
    assert merged == long_names


def test_pack_requests_respects_count_and_size() -> None:
    packed = ev.pack_requests(["{}"] * 2500)
    assert [len(p) for p in packed] == [1000, 1000, 500]
    big = ["x" * 400_000] * 5
    assert [len(p) for p in ev.pack_requests(big)] == [2, 2, 1]


# -- the client -----------------------------------------------------------------------


def test_client_reads_the_environment_and_names_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTOMATIONS_URL", "AUTOMATIONS_KEY", "AUTOMATIONS_TEAM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="AUTOMATIONS_KEY"):
        Client(team="t")
    with pytest.raises(ValueError, match="AUTOMATIONS_TEAM"):
        Client(key=SECRET)
    monkeypatch.setenv("AUTOMATIONS_KEY", SECRET)
    monkeypatch.setenv("AUTOMATIONS_TEAM", "acme")
    client = Client()
    assert client.url == "http://127.0.0.1:8080" and client.team == "acme" and client.timeout == 10.0
    monkeypatch.setenv("AUTOMATIONS_URL", "http://example.test:9000/")
    assert Client().url == "http://example.test:9000"
    assert Client(url="http://127.0.0.2:1", team="other").team == "other"
    with pytest.raises(ValueError):
        Client(url="ftp://x")
    with pytest.raises(ValueError):
        Client(team="bad team")


def test_the_key_never_shows_in_the_client() -> None:
    client = Client(url="http://127.0.0.1:1", key=SECRET, team="t")
    for text in (repr(client), str(client), repr(vars(client)), "%s %r" % (client, client)):
        assert SECRET not in text
    run = Run(client, "train")
    assert SECRET not in repr(run) and SECRET not in repr(vars(run))
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_a_network_error_is_an_automations_error_without_the_key(closed_url: str) -> None:
    client = Client(url=closed_url, key=SECRET, team="t", timeout=2)
    with pytest.raises(AutomationsError) as raised:
        client.send({"event_type": "RUN_STATE"})
    error = raised.value
    assert error.status is None and error.code == "network" and error.retryable
    assert SECRET not in str(error) and SECRET not in repr(error)
    cause = error.__cause__ or error.__context__
    assert cause is None or SECRET not in repr(cause)


def test_a_hanging_server_times_out(hanging: HangingServer) -> None:
    client = Client(url=hanging.url, key=SECRET, team="t", timeout=0.5)
    with pytest.raises(AutomationsError) as raised:
        client.send({"event_type": "RUN_STATE"})
    assert raised.value.status is None and raised.value.code == "timeout"


def test_errors_parse_status_code_message_and_field(server: Server, team: Team, project: str) -> None:
    client = Client(url=server.url, key=team.ingest_key, team=team.name)
    bad = {"event_type": "RUN_METRICS", "project": project, "run": {"id": "r"}, "step": 1, "metrics": {"loss": True}}
    with pytest.raises(AutomationsError) as raised:
        client.send(bad)
    error = raised.value
    assert (error.status, error.code, error.field) == (400, "invalid_request", "metrics.loss")
    assert "must be a number" in error.message and "metrics.loss" in str(error)
    with pytest.raises(AutomationsError) as raised:
        client.send_many([dict(bad, id="ok-1", metrics={"loss": 1.0}), bad])
    assert raised.value.field == "events[1].metrics.loss"
    assert team.ingest_key not in str(raised.value) and team.ingest_key not in repr(raised.value)

    wrong = Client(url=server.url, key=SECRET, team=team.name)
    with pytest.raises(AutomationsError) as raised:
        wrong.send(dict(bad, metrics={"loss": 1.0}))
    assert (raised.value.status, raised.value.code) == (401, "unauthorized") and not raised.value.retryable
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)


def test_send_accepts_once_and_send_many_chunks_2500_events(server: Server, team: Team, project: str) -> None:
    client = Client(url=server.url, key=team.ingest_key, team=team.name)
    one = {"id": "single-1", "event_type": "RUN_STATE", "project": project, "run": {"id": "r", "state": "RUNNING"}}
    assert client.send(one) == {"accepted": ["single-1"], "duplicates": []}
    assert client.send(one) == {"accepted": [], "duplicates": ["single-1"]}

    events = [
        {
            "id": "bulk.%d" % i,
            "event_type": "RUN_METRICS",
            "project": project,
            "run": {"id": "bulk", "name": "bulk-1"},
            "step": i,
            "metrics": {"loss": float("nan") if i == 7 else 1.0 / (i + 1)},
        }
        for i in range(2500)
    ]
    requests = []
    post = client._post

    def counting_post(body: bytes, timeout=None):  # type: ignore[no-untyped-def]
        requests.append(len(json.loads(body)["events"]))
        return post(body, timeout)

    client._post = counting_post  # type: ignore[method-assign]
    answer = client.send_many(events)
    assert requests == [1000, 1000, 500]
    assert len(answer["accepted"]) == 2500 and len(set(answer["accepted"])) == 2500 and answer["duplicates"] == []
    again = client.send_many(events)
    assert again["accepted"] == [] and len(again["duplicates"]) == 2500
    assert client.send_many([]) == {"accepted": [], "duplicates": []}


def test_log_programmer_errors() -> None:
    run = Run(Client(url="http://127.0.0.1:1", key=SECRET, team="t"), "train")
    with pytest.raises(TypeError):
        run.log([("loss", 1.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        run.log({"loss": 1.0}, step=True)
    with pytest.raises(TypeError):
        run.log({"loss": 1.0}, step=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        run.log({"loss": 1.0}, step=-1)
    with pytest.raises(ValueError):
        run.log({"loss": 1.0}, step=2**63)
    with pytest.raises(ValueError):
        Run(run.client, "bad project")
    with pytest.raises(ValueError):
        Run(run.client, "train", run_id="x" * 129)
    # steps: auto-increment, and an explicit step moves the counter on
    run.log({"a": 1})
    run.log({"a": 1}, step=10)
    run.log({"a": 1})
    assert [step for step, _ in run._buf] == [0, 10, 11]
    # the dict is copied: reusing it changes nothing buffered
    metrics = {"a": 1.0}
    run.log(metrics)
    metrics["a"] = 2.0
    assert run._buf[-1][1] == {"a": 1.0}
    assert math.isclose(run.pending, 4)


def test_log_after_finish_is_dropped_with_one_warning(closed_url: str) -> None:
    run = Run(Client(url=closed_url, key=SECRET, team="t"), "train", finish_timeout=0)
    run.finish()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"a": 1.0})
        run.log({"a": 1.0})
    assert len([w for w in caught if issubclass(w.category, AutomationsWarning)]) == 1
    assert run.dropped == 2


def test_a_loopback_server_is_reached_directly_whatever_the_proxy(
    server: Server, team: Team, project: str, monkeypatch: pytest.MonkeyPatch, closed_url: str
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, closed_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = Client(url=server.url, key=team.ingest_key, team=team.name)
    answer = client.send({"event_type": "RUN_STATE", "project": project, "run": {"id": "p", "state": "RUNNING"}})
    assert len(answer["accepted"]) == 1


def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else(receiver) -> None:  # type: ignore[no-untyped-def]
    import http.server
    import threading

    target = receiver.url("/stolen")

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client(url="http://127.0.0.1:%d" % httpd.server_address[1], key=SECRET, team="t", timeout=5)
        with pytest.raises(AutomationsError) as raised:
            client.send({"event_type": "RUN_STATE"})
        assert raised.value.status == 302 and not raised.value.retryable
        assert receiver.bodies("/stolen") == []
    finally:
        httpd.shutdown()
        httpd.server_close()
