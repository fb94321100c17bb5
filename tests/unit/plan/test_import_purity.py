"""The planner is pure in its imports as well as its behaviour.

Importing it must not load the YAML loader, the schema validator or an S3
client, and no module of the core (plan/ and the top-level modules it builds
on) may touch files or the environment itself: that happens at the edges
(`commands/`, `spec/`, `stores/`), which hand the core plain values.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import reconciler

PACKAGE = Path(reconciler.__file__).parent
# The top-level modules the planner builds on; `rules.py` holds the pair-state rules where it exists.
_CORE_TOP = ("model", "units", "errors", "globs", "keys", "actor_layout", "targets", "rules")
CORE = [*sorted((PACKAGE / "plan").glob("*.py")), *(p for n in _CORE_TOP if (p := PACKAGE / f"{n}.py").exists())]

# Loaded by the edges only. A prefix bans the package and everything under it.
FORBIDDEN = (
    "yaml",
    "jsonschema",
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "http.client",
    "reconciler.spec",
    "reconciler.stores",
    "reconciler.observe",
    "reconciler.apply",
    "reconciler.commands",
)

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_by(*modules: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, check=True, env=env
    ).stdout
    loaded: list[str] = json.loads(out)
    return [m for m in loaded if any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN)]


def test_importing_the_planner_loads_no_edge() -> None:
    assert _loaded_by("reconciler.plan") == []


def test_no_module_of_the_core_loads_an_edge() -> None:
    modules = [
        f"reconciler.plan.{p.stem}" if p.parent.name == "plan" else f"reconciler.{p.stem}"
        for p in CORE
        if p.stem != "__init__"
    ]
    assert _loaded_by(*modules) == []


def test_the_probe_sees_an_edge_when_one_is_loaded() -> None:
    """Guards the test itself: a probe that never saw yaml would pass for any planner."""
    assert "yaml" in _loaded_by("reconciler.spec.loader")


# Names whose use in the core would mean it does I/O or reads the environment itself.
_BANNED_MODULES = frozenset({"os", "pathlib", "tempfile", "shutil", "io", "subprocess", "socket", "urllib.request"})
_BANNED_CALLS = frozenset({"open", "input", "print", "getenv"})
_BANNED_ATTRIBUTES = frozenset(
    {
        "environ",
        "getenv",
        "read_text",
        "write_text",
        "read_bytes",
        "write_bytes",
        "mkstemp",
        "fsync",
        "unlink",
        "mkdir",
        "isatty",
        "stdout",
        "stderr",
    }
)


def io_uses(source: str) -> list[str]:
    """Each import of an I/O module, call of an I/O builtin or use of an I/O attribute, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name in _BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in _BANNED_MODULES:
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BANNED_CALLS:
            found.append(f"{node.lineno}: {node.func.id}()")
        elif isinstance(node, ast.Attribute) and node.attr in _BANNED_ATTRIBUTES:
            found.append(f"{node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_does_no_file_io_and_reads_no_environment(path: Path) -> None:
    assert io_uses(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "from pathlib import Path\n",
        "x = open('f')\n",
        "import os as o\nx = o.environ['HOME']\n",
        "def f(p):\n    return p.read_text()\n",
        "import sys\nsys.stdout.write('x')\n",
    ],
)
def test_the_scan_catches_io(source: str) -> None:
    assert io_uses(source) != []


def test_the_scan_lets_pure_code_through() -> None:
    assert io_uses("import json\nfrom dataclasses import dataclass\nx = json.dumps({'open': 1}).upper()\n") == []
