"""The package is Python 3.9 code, standard library only."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import automations_client

SOURCE = Path(__file__).resolve().parent.parent / "src" / "automations_client"
FILES = sorted(SOURCE.glob("*.py"))
STDLIB = set(getattr(sys, "stdlib_module_names", ())) or {
    "__future__", "collections", "datetime", "email", "hashlib", "http", "ipaddress", "json", "logging",
    "math", "os", "random", "re", "socket", "threading", "time", "types", "typing", "unicodedata",
    "urllib", "uuid", "warnings",
}  # fmt: skip


def test_there_are_package_files() -> None:
    assert {p.name for p in FILES} >= {"__init__.py", "client.py", "run.py", "events.py", "errors.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_parses_as_python_3_9(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
    compile(tree, str(path), "exec")
    for node in ast.walk(tree):
        # standard library only
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module.split(".")[0] in STDLIB, "not the standard library: %s" % node.module
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in STDLIB, "not the standard library: %s" % alias.name
    assert not any(isinstance(node, getattr(ast, "Match", ())) for node in ast.walk(tree))


def test_the_public_api() -> None:
    from automations_client import AutomationsError, Client, Run

    assert issubclass(AutomationsError, Exception) and callable(Client) and callable(Run)
    assert set(automations_client.__all__) >= {"AutomationsError", "Client", "Run"}
    assert automations_client.__version__ == "0.1.0"


def _python39() -> "str | None":
    """A Python 3.9 interpreter that runs: $PYTHON39, python3.9 on PATH, or pyenv's."""
    candidates = [os.environ.get("PYTHON39"), shutil.which("python3.9")]
    candidates += [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            result = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                    capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and "(3, 9)" in result.stdout:
            return candidate
    return None


PYTHON39 = _python39()


@pytest.mark.skipif(PYTHON39 is None, reason="no Python 3.9 interpreter found")
def test_it_imports_and_runs_on_a_real_python_3_9() -> None:
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from automations_client import Client, Run\n"
        "from automations_client.events import normalize_metrics\n"
        "assert normalize_metrics({'a': float('nan'), 'b': True})[0] == {'a': 'NaN'}\n"
        "run = Run(Client(url='http://127.0.0.1:1', key='k', team='t'), 'p', finish_timeout=0.2)\n"
        "run.start(); run.log({'loss': 1.0}); run.finish()\n"
        "print(sys.version_info[:2])\n" % str(SOURCE.parent)
    )
    result = subprocess.run([str(PYTHON39), "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "(3, 9)" in result.stdout
