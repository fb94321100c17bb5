"""The README and docs say what they show: every ```yaml block is a spec pixel validates, alone or with the spec
files the HTML comment above it names, and the `pixel serve` curl example runs as written.

A block may be preceded by one marker line:
  <!-- pixel-snippet: with specs/stores.yaml specs/tiers.yaml -->   validated together with those files
  <!-- pixel-snippet: not a spec (why) -->                           skipped (a GitHub workflow, ...)
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.spec import SpecErrors, load_desired
from tests.integration.demo_world import make_demo

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.S | re.M)
_MARKER = re.compile(r"<!-- pixel-snippet: (?P<what>.*?) -->\n$")


@dataclass(frozen=True)
class Snippet:
    doc: Path
    line: int
    body: str
    marker: str | None

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"


def yaml_snippets() -> list[Snippet]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in _BLOCK.finditer(text):
            if block.group("lang") != "yaml":
                continue
            before = text[: block.start()]
            marker = _MARKER.search(before[before.rfind("\n", 0, len(before) - 1) + 1 :])
            line = text.count("\n", 0, block.start()) + 2  # the block's first line
            found.append(Snippet(doc, line, block.group("body"), marker.group("what") if marker else None))
    return found


SNIPPETS = yaml_snippets()


def test_the_docs_have_yaml_snippets_and_markers_are_read() -> None:
    assert len(SNIPPETS) >= 6
    assert sum(1 for s in SNIPPETS if s.marker and s.marker.startswith("with ")) >= 3
    assert any(s.marker and s.marker.startswith("not a spec") for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_every_yaml_snippet_validates_as_written(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.marker and snippet.marker.startswith("not a spec"):
        assert not re.search(r"^(stores|mappings):", snippet.body, re.M), "a spec marked as not a spec"
        return
    with_files: list[str] = []
    if snippet.marker is not None:
        assert snippet.marker.startswith("with "), f"{snippet.id}: unknown marker {snippet.marker!r}"
        with_files = snippet.marker.removeprefix("with ").split()
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in with_files:
        (specs / Path(name).name).write_text((REPO / name).read_text())
    (specs / "zz-snippet.yaml").write_text(snippet.body)
    # No variable set: a snippet's ${VAR:-default} must stand on its default, as a reader's first try would.
    env = {"HOME": str(tmp_path)}
    try:
        load_desired(specs, env)
    except SpecErrors as exc:
        pytest.fail(f"{snippet.id} (with {with_files or 'nothing'}) does not validate:\n{exc}")


def _serve_example() -> str:
    text = (REPO / "README.md").read_text()
    blocks = [b.group("body") for b in _BLOCK.finditer(text) if b.group("lang") == "sh"]
    blocks = [body for body in blocks if "pixel serve" in body]
    assert len(blocks) == 1
    return blocks[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.integration
@pytest.mark.slow
def test_the_serve_curl_example_runs_as_written(seaweed: Any, bucket: str, tmp_path: Path) -> None:
    """In a directory holding the demo world's specs/ and two JPEGs: the README's lines, with only the port
    moved off 8080 (given to the service by its PIXEL_PORT twin) so that parallel runs do not collide."""
    demo = make_demo(tmp_path, seaweed, bucket)
    demo.env["PIXEL_CACHE_DIR"] = str(tmp_path / "cache")
    applied = demo.pixel("apply", "--auto-approve", "-q")
    assert applied.code == 0, applied.err
    (tmp_path / "shot1.jpg").write_bytes(tiny_jpeg(40, "shot 1"))
    (tmp_path / "shot2.jpg").write_bytes(tiny_jpeg(41, "shot 2"))
    port = _free_port()
    script = _serve_example().replace("localhost:8080", f"localhost:{port}")
    env = {
        **os.environ,
        **demo.env,
        "PIXEL_PORT": str(port),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.pop("PIXEL_API_TOKEN", None)
    # The example leaves the service running in the background, as a reader's shell would: stop it at the end.
    wrapped = "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nset -e\n" + script
    proc = subprocess.run(
        ["bash", "-c", wrapped], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    synced = int(lines[0])  # jq '.synced_count' of actor 42
    assert synced >= 0
    # Two JSON documents follow: the upload's 201 document, then the delete's; neither an auth error.
    decoder = json.JSONDecoder()
    rest = "\n".join(lines[1:])
    uploaded, end = decoder.raw_decode(rest)
    deleted, _ = decoder.raw_decode(rest[end:].lstrip())
    assert "error" not in uploaded, uploaded
    names = [image["filename"] for image in uploaded["training_images"]]
    assert "0007_asian_25_female_8.jpg" in names and "0007_asian_25_female_9.jpg" in names
    # The demo's actors tier is `ownership: shared`: the delete is authorised, and refused for what it would do to
    # S3, as the README's comment says (a missing token would have been 401, a wrong one 403).
    assert deleted["status"] == 409 and "S3 deletes are not allowed for actor 0007" in deleted["error"], deleted
    image = demo.root / "data" / "actors" / "0007_asian_25_female" / "training_data" / "0007_asian_25_female_3.jpg"
    assert image.exists()
