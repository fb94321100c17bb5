"""`pixel_in_process` answers as the `pixel` child does: the same exit code, stdout and stderr for the same
commands on twin worlds (one driven each way), so a test may swap one for the other and assert the same."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.dev.seaweed import SeaweedServer
from tests.integration.pixelenv import Run, pixel, pixel_in_process, write_specs

pytestmark = pytest.mark.integration

# Twin worlds differ only in this word (same length, so padded columns line up): directories and S3 prefixes.
CHILD, HERE = "kidrun", "inproc"
# What differs between any two runs, or between the twins beyond their word: times, digests of the specs, a
# local file's identity (its etag: size-mtime-ctime-inode-device) and mtime in nanoseconds, lock ids.
_VARYING = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z|\b[0-9a-f]{64}\b|\b\d+(-\d+){4}\b|\b\d{16,}\b"
    r"|(?<=id=)[0-9a-f]{32}\b|(?<=\"id\": \")[0-9a-f]{32}\b"
)
# Fields measured as the run goes (how long, how fast) or that depend on when (a file changed in the last 2 s
# is hashed again: observe/hashcache.py), as `key=value` in a log line or `"key": value` in JSON.
_MEASURED = re.compile(r"(?<![\w-])(seconds|elapsed_s|bytes_per_s|bytes_read|from_cache|read)(=|\": )[\d.]+")
# The same, said by the observing bar: its bytes (those read; the field before `bytes_per_s`) and its note, "4 local
# files hashed (36 B read)" when the files were read, no parenthesis when the cache answered (one twin can run
# inside the 2 s window and the other just past it).
_READ_BYTES = re.compile(r"(?<![\w-])(bytes(?:=|\": ))\d+(?=,? \"?bytes_per_s)")
_READ_NOTE = re.compile(r" \([^()\"']* read\)")


def twin(tmp_path: Path, seaweed: SeaweedServer, bucket: str, word: str) -> Path:
    root = tmp_path / word / "data"
    for i in range(4):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"f{i}.jsonl").write_text(f'{{"i": {i}}}\n')
    (tmp_path / word / "pixel.env").write_text("PIXEL_IN_PROCESS_TWIN=3\n")
    bad = tmp_path / word / "bad"
    bad.mkdir()
    (bad / "specs.yaml").write_text("stores:\n  s3:\n    type: s3\n    bucket: 7\nmappings:\n  - name: [m\n")
    return write_specs(
        tmp_path / word / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "m", "from": "'disk:'", "to": f"'s3:{word}/'", "authority": "local", "prune": True}],
    )


def normal(text: str, tmp_path: Path, word: str) -> str:
    """`text` as the other twin's would read: the twin's word and what varies replaced."""
    text = text.replace(str(tmp_path / word), "WORLD").replace(word, "WORD")
    text = _MEASURED.sub(r"\1\2~", _VARYING.sub("~", text))
    return _READ_NOTE.sub("", _READ_BYTES.sub(r"\1~", text))


def same(child: Run, here: Run, tmp_path: Path) -> tuple[int, str, str]:
    assert (here.code, normal(here.out, tmp_path, HERE), normal(here.err, tmp_path, HERE)) == (
        child.code, normal(child.out, tmp_path, CHILD), normal(child.err, tmp_path, CHILD)
    )
    return child.code, child.out, child.err


# Each step as both runners take it, in order: the twins change alike (apply, deletes) and answer alike.
STEPS: list[list[str]] = [
    ["validate"],
    ["validate", "--format", "json"],
    ["plan"],
    ["plan", "--format", "json", "--detailed-exitcode"],
    ["plan", "--format", "markdown", "--compact"],
    ["apply"],  # no terminal to confirm on: refused, exit 1
    # One action at a time: the order of the action events is the order the threads finish in.
    ["--log-format", "json", "apply", "--auto-approve", "--format", "json", "--parallelism", "1"],
    ["plan", "--detailed-exitcode"],
    ["verify", "--format", "json"],
    ["status"],
    ["--env-file", "{world}/pixel.env", "apply", "--auto-approve", "-v"],
    ["plan", "--bogus-flag"],  # a usage error: click's message, exit 1
    ["plan", "--parallelism", "0"],
    ["show", "{world}/no-such-plan.json"],
    ["validate", "--specs", "{world}/bad"],  # one clear error: file and line
    ["plan", "--specs", "{world}/bad", "--format", "json"],
    ["--help"],
    ["apply", "--help"],
]


def test_each_command_answers_in_process_as_the_pixel_child_does(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    env = seaweed.env()
    before, cwd = dict(os.environ), os.getcwd()
    specs = {word: twin(tmp_path, seaweed, bucket, word) for word in (CHILD, HERE)}
    answers: list[tuple[int, str, str]] = []
    for step in STEPS:
        child, here = (
            run([arg.replace("{world}", str(tmp_path / word)) for arg in step], env, cwd=specs[word].parent)
            for run, word in ((pixel, CHILD), (pixel_in_process, HERE))
        )
        answers.append(same(child, here, tmp_path))
    codes = [code for code, _, _ in answers]
    # The steps reached what they were chosen for: refusals, changes, a clean apply, then no changes.
    assert codes == [0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0], answers
    assert "specs.yaml" in answers[-3][2] and "line 6" in answers[-4][2], answers[-4:-2]
    # What a command set in its process (the env file, NO_COLOR, the working directory) ended with the call.
    assert (dict(os.environ), os.getcwd()) == (before, cwd)
