"""Fixtures: the real ``automations serve`` binary, a team with keys, a webhook receiver."""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_BIN = HERE.parent.parent.parent / "target" / "debug" / "automations"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls ``predicate`` until it returns something truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


def http_json(method: str, url: str, key: Optional[str] = None, body: Any = None, timeout: float = 10.0) -> Any:
    """A plain request for the test's own set-up (the client under test is not used)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", "Bearer " + key)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raise AssertionError("%s %s -> %d %s" % (method, url, error.code, error.read()[:500])) from None
    return json.loads(raw) if raw else None


class Server:
    """One ``automations serve`` process on a free loopback port with its own data dir."""

    def __init__(self, binary: Path, extra_env: Optional[Dict[str, str]] = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.operator_key = secrets.token_urlsafe(30)[:40]
        self.data_dir = tempfile.mkdtemp(prefix="automations-pytest-")
        self.log_path = Path(self.data_dir) / "server.log"
        env = dict(os.environ)
        for name in ("AUTOMATIONS_KEY", "AUTOMATIONS_TEAM", "AUTOMATIONS_URL"):
            env.pop(name, None)
        env.update(
            {
                "AUTOMATIONS_OPERATOR_KEY": self.operator_key,
                "AUTOMATIONS_ALLOW_NETWORKS": "127.0.0.0/8",
                "AUTOMATIONS_RETRY_SCHEDULE": "1,1",
                "RUST_LOG": env.get("RUST_LOG", "warn"),
            }
        )
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", str(Path(self.data_dir) / "data")],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for(self._healthy, 30.0, "GET /healthz on %s" % self.url, interval=0.1)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("the server exited with %s:\n%s" % (self.process.returncode, self.log_text()))
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(self.url + "/healthz", timeout=1.0) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, body: Any = None, key: Optional[str] = None) -> Any:
        return http_json(method, self.url + path, key or self.operator_key, body)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Team:
    """A team on a server, with an admin key and an ingest key."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.name = "pytest-" + uuid.uuid4().hex[:8]
        server.api("POST", "/v1/teams", {"name": self.name})
        self.admin_key = server.api("POST", "/v1/teams/%s/api-keys" % self.name, {"user": "pytest", "role": "admin"})["key"]
        self.ingest_key = server.api("POST", "/v1/teams/%s/api-keys" % self.name, {"user": "pytest-ci", "role": "ingest"})["key"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.server.api(method, "/v1/teams/%s%s" % (self.name, path), body, key=self.admin_key)

    def webhook(self, url: str) -> str:
        return self.api("POST", "/integrations", {"type": "webhook", "name": "recv-" + uuid.uuid4().hex[:8], "url": url})["id"]

    def automation(self, body: Dict[str, Any]) -> str:
        return self.api("POST", "/automations", body)["id"]

    def executions(self, automation_id: str) -> List[Dict[str, Any]]:
        return self.api("GET", "/automations/%s/executions?limit=100" % automation_id)["executions"]


class Receiver:
    """A loopback HTTP server that records every POST (path, JSON body) and GET."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    receiver.calls.append({"path": self.path, "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:  # noqa: N802 (recorded too: a redirect turns POST into GET)
                with receiver._lock:
                    receiver.calls.append({"path": self.path, "body": None})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def bodies(self, path: str) -> List[Any]:
        with self._lock:
            return [call["body"] for call in self.calls if call["path"] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HangingServer:
    """Accepts connections and never answers (until closed)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.held: List[socket.socket] = []
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._closed.set()
        self.thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def binary_path() -> Path:
    return Path(os.environ.get("AUTOMATIONS_BIN") or DEFAULT_BIN)


@pytest.fixture(scope="session")
def server_binary() -> Path:
    path = binary_path()
    if not path.exists():
        pytest.fail("the server binary %s is missing: run `cargo build -p automations-local` or set AUTOMATIONS_BIN" % path)
    return path


@pytest.fixture(scope="session")
def server(server_binary: Path) -> Iterator[Server]:
    srv = Server(server_binary)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def team(server: Server) -> Team:
    return Team(server)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    try:
        yield recv
    finally:
        recv.close()


@pytest.fixture()
def project() -> str:
    """A project of the test's own, so that automations of other tests never match."""
    return "train-" + uuid.uuid4().hex[:8]


@pytest.fixture()
def hanging() -> Iterator[HangingServer]:
    srv = HangingServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture()
def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return "http://127.0.0.1:%d" % free_port()
