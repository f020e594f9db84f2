"""A Run against the real server: states and metrics arrive, automations fire."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from automations_client import Client, Run
from conftest import Receiver, Server, Team, wait_for


def _hook(team: Team, receiver: Receiver) -> "tuple[str, str]":
    path = "/hook/" + uuid.uuid4().hex[:12]
    return path, team.webhook(receiver.url(path))


def _state_automation(team: Team, project: str, integration: str, states: "list[str]") -> str:
    return team.automation(
        {
            "name": "states-" + uuid.uuid4().hex[:8],
            "scope": {"type": "project", "name": project},
            "event": {"type": "RUN_STATE", "states": states},
            "action": {
                "type": "webhook",
                "integration": integration,
                "payload": {"kind": "state", "run": "${run_name}", "user": "${run_user}", "state": "${run_state}"},
            },
        }
    )


def _client(server: Server, team: Team, **kwargs) -> Client:  # type: ignore[no-untyped-def]
    return Client(url=server.url, key=team.ingest_key, team=team.name, **kwargs)


def test_states_and_metrics_arrive_and_a_threshold_fires_once(
    server: Server, team: Team, receiver: Receiver, project: str
) -> None:
    # GIVEN a threshold automation (cooldown 0: every crossing would fire) and one on states
    path, integration = _hook(team, receiver)
    threshold = team.automation(
        {
            "name": "loss-high",
            "scope": {"type": "project", "name": project},
            "event": {"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "op": "$gt", "threshold": 5, "cooldown_seconds": 0},
            "action": {
                "type": "webhook",
                "integration": integration,
                "payload": {"kind": "metric", "run": "${run_name}", "value": "${metric_value}", "metric": "${metric_name}"},
            },
        }
    )
    states = _state_automation(team, project, integration, ["RUNNING", "FINISHED"])

    # WHEN a run logs 200 steps, one of whose losses crosses the threshold
    client = _client(server, team)
    with Run(client, project, name="sunny-1", user="alice", flush_interval=0.1, batch_size=64) as run:
        for step in range(200):
            loss = 7.5 if step == 137 else 1.0 / (step + 1)
            run.log({"loss": loss, "acc": step / 200.0})
            if step % 50 == 0:
                time.sleep(0.05)  # let a few flushes happen mid-run

    # THEN every point went, none twice, and the run is FINISHED
    assert run.state == "FINISHED"
    stats = run.stats
    assert stats["sent"] == 200 and stats["dropped"] == 0 and stats["pending"] == 0, stats
    assert stats["duplicates"] == 0 and stats["invalid"] == 0, stats

    # AND both states reached the server: their automation fired for RUNNING and FINISHED
    def state_hooks() -> "list[dict]":
        return [b for b in receiver.bodies(path) if b.get("kind") == "state"]

    wait_for(lambda: len(state_hooks()) >= 2, 20, "the RUNNING and FINISHED webhooks")
    assert sorted(b["state"] for b in state_hooks()) == ["FINISHED", "RUNNING"]
    assert all(b["run"] == "sunny-1" and b["user"] == "alice" for b in state_hooks())

    # AND the threshold fired exactly once, with the run's name and the value
    wait_for(lambda: [b for b in receiver.bodies(path) if b.get("kind") == "metric"], 20, "the threshold webhook")
    wait_for(
        lambda: [e for e in team.executions(threshold) if e["status"] == "FINISHED"], 20, "the threshold execution to finish"
    )
    time.sleep(0.5)  # anything fired late would show now
    metric_hooks = [b for b in receiver.bodies(path) if b.get("kind") == "metric"]
    assert metric_hooks == [{"kind": "metric", "run": "sunny-1", "value": 7.5, "metric": "loss"}]
    assert len(team.executions(threshold)) == 1
    assert len(team.executions(states)) == 2


def test_an_exception_in_the_block_sends_failed_and_propagates(
    server: Server, team: Team, receiver: Receiver, project: str
) -> None:
    path, integration = _hook(team, receiver)
    failed = _state_automation(team, project, integration, ["FAILED"])
    client = _client(server, team)

    class Boom(Exception):
        pass

    boom = Boom("diverged")
    with pytest.raises(Boom) as raised:
        with Run(client, project, name="doomed-2", user="bob", flush_interval=0.1) as run:
            run.log({"loss": 0.5})
            raise boom
    assert raised.value is boom  # unchanged
    assert run.state == "FAILED"
    assert run.stats["sent"] == 1

    hooks = wait_for(lambda: receiver.bodies(path), 20, "the FAILED webhook")
    assert hooks == [{"kind": "state", "run": "doomed-2", "user": "bob", "state": "FAILED"}]
    assert len(team.executions(failed)) == 1


def test_explicit_start_finish_and_non_finite_values_reach_a_nan_automation(
    server: Server, team: Team, receiver: Receiver, project: str
) -> None:
    path, integration = _hook(team, receiver)
    team.automation(
        {
            "name": "loss-nan",
            "scope": {"type": "project", "name": project},
            "event": {"type": "RUN_METRIC_NAN", "metric": "loss"},
            "action": {"type": "webhook", "integration": integration, "payload": {"value": "${metric_value}"}},
        }
    )
    client = _client(server, team)
    run = Run(client, project, run_id="explicit/run id ü" + "x" * 90, flush_interval=0.1)
    run.start()
    run.log({"loss": 0.3, "flag": True})  # the bool is left out, the loss goes
    run.log({"loss": float("inf"), "acc": float("nan"), "neg": float("-inf")})
    run.log({"flag": False})  # nothing left to send: dropped
    run.finish()
    assert run.state == "FINISHED"
    stats = run.stats
    assert stats["sent"] == 2 and stats["dropped"] == 1 and stats["invalid"] == 2, stats
    hooks = wait_for(lambda: receiver.bodies(path), 20, "the NaN webhook")
    assert hooks == [{"value": "Infinity"}]


def test_same_step_logged_in_two_flushes_is_two_events_both_accepted(server: Server, team: Team, project: str) -> None:
    client = _client(server, team)
    with Run(client, project, flush_interval=0.05) as run:
        run.log({"loss": 1.0}, step=5)
        wait_for(lambda: run.sent == 1, 10, "the first point to be sent")
        run.log({"acc": 0.5}, step=5)
        run.log({"loss": 0.9})  # auto step: 6
    assert run.stats["sent"] == 3 and run.stats["duplicates"] == 0, run.stats


def test_a_refused_key_drops_the_points_once_and_finish_is_quick(
    server: Server, team: Team, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "atm_" + "K" * 43
    client = Client(url=server.url, key=secret, team=team.name)
    caplog.set_level(logging.DEBUG, logger="automations_client")
    started = time.monotonic()
    with Run(client, project, flush_interval=0.05, finish_timeout=5) as run:
        for step in range(100):
            run.log({"loss": 1.0})
    assert time.monotonic() - started < 3
    assert run.stats["sent"] == 0 and run.stats["dropped"] == 100 and run.stats["pending"] == 0, run.stats
    warnings_logged = [r for r in caplog.records if r.levelno >= logging.WARNING and "refused" in r.getMessage()]
    assert len(warnings_logged) == 1 and "401" in warnings_logged[0].getMessage()
    assert secret not in caplog.text


def test_a_rate_limited_run_honours_retry_after_and_sends_everything(server_binary, project: str) -> None:  # type: ignore[no-untyped-def]
    limited = Server(server_binary, {"AUTOMATIONS_INGEST_RATE": "2", "AUTOMATIONS_INGEST_BURST": "1"})
    try:
        team = Team(limited)
        client = _client(limited, team)
        client.send({"event_type": "RUN_STATE", "project": project, "run": {"id": "a", "state": "RUNNING"}})
        from automations_client import AutomationsError

        with pytest.raises(AutomationsError) as raised:
            client.send({"event_type": "RUN_STATE", "project": project, "run": {"id": "b", "state": "RUNNING"}})
        assert raised.value.status == 429 and raised.value.retry_after is not None and raised.value.retry_after >= 1

        run = Run(client, project, flush_interval=0.05, batch_size=10, finish_timeout=15)
        run.start()
        for step in range(30):
            run.log({"loss": float(step)})
            if step % 10 == 9:
                time.sleep(0.1)
        run.finish()
        stats = run.stats
        assert stats["sent"] == 30 and stats["dropped"] == 0 and stats["failed_attempts"] >= 1, stats
    finally:
        limited.stop()


def test_an_event_the_server_refuses_is_dropped_alone_and_the_rest_goes(
    server: Server, team: Team, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a request whose first event the server refuses (a 400 naming events[0])
    client = _client(server, team)
    run = Run(client, project, flush_interval=0.05)
    run._states.append('{"id":"bad-1","event_type":"NOPE","project":"%s"}' % project)
    caplog.set_level(logging.WARNING, logger="automations_client")
    # WHEN the run sends it with its RUNNING state and points
    with run:
        for step in range(20):
            run.log({"loss": 1.0})
    # THEN only that event was dropped, its field logged; everything else went
    stats = run.stats
    assert stats["sent"] == 20 and stats["dropped"] == 0 and stats["events_sent"] == 22, stats
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "events[0].event_type" in refused[0], refused
