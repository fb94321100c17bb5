"""`--format json` on `validate`, `verify` and `explain`: one JSON document on stdout in the shape docs/ci.md
documents, parsed here field by field; the exit code is the text form's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.commands.explain import explanation, render_text
from tests.integration.pixelenv import pixel_in_process
from tests.integration.test_verify_coverage import DISCOVERED, LISTED, md5, write_world
from tests.unit.plan.fixed_plan import MD5_A, fixed_desired, fixed_plan
from tests.unit.plan.test_explain import observed

GOOD = "stores:\n  data:\n    type: s3\n    bucket: data\n  disk:\n    type: local\n    root: /tmp/d\n"
MAPPING = "mappings:\n  - name: raw\n    from: disk:raw\n    to: data:raw/\n"
BAD = "mappings:\n  - name: raw\n    from: disk:raw\n    to: nowhere:raw/\n"


def _validate(args: list[str]) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["validate", "--format", "json", *args], env={"PIXEL_ENV_FILE": None})
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_validate_json_of_a_valid_spec_directory(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(MAPPING)
    code, doc, stderr = _validate(["--specs", str(tmp_path)])
    assert code == 0, stderr
    assert doc["format_version"] == 1 and doc["valid"] is True
    [spec_set] = doc["spec_sets"]
    assert spec_set["specs"] == str(tmp_path) and spec_set["valid"] is True and spec_set["errors"] == []
    assert spec_set["summary"] is None
    assert spec_set["counts"] == {
        "stores": 2, "mappings": 1, "tiers": 0, "datasets": 0, "actors": 0, "final_dataset": False
    }
    assert len(spec_set["spec_digest"]) == 64


def test_validate_json_of_a_broken_spec_names_file_line_and_path(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(BAD)
    code, doc, _ = _validate(["--specs", str(tmp_path)])
    assert code == 1
    assert doc["valid"] is False
    [spec_set] = doc["spec_sets"]
    assert spec_set["counts"] is None and spec_set["spec_digest"] is None
    [problem] = spec_set["errors"]
    assert problem["file"].endswith("b.yaml") and problem["line"] == 4 and problem["path"] == "mappings[0].to"
    assert 'store "nowhere" is not defined' in problem["message"]
    assert problem["text"].startswith(problem["file"] + ":4: mappings[0].to: ")
    assert spec_set["summary"] == f"1 problem in the specs in {tmp_path}/; nothing was touched"


def test_validate_files_checks_the_spec_set_each_belongs_to(tmp_path: Path) -> None:
    """A pre-commit hook passes the changed files: each is checked with the rest of its directory, so a
    mapping file that is fine alone but names a store another file declares is valid, and every set is checked."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "stores.yaml").write_text(GOOD)
    (good / "layout.yaml").write_text(MAPPING)  # alone it would name undefined stores
    (bad / "stores.yaml").write_text(GOOD)
    (bad / "layout.yaml").write_text(BAD)
    code, doc, _ = _validate([str(good / "layout.yaml"), str(bad / "layout.yaml"), str(good / "stores.yaml")])
    assert code == 1
    assert [(s["specs"], s["valid"]) for s in doc["spec_sets"]] == [(str(good), True), (str(bad), False)]
    code, doc, _ = _validate(["--specs", str(bad), str(good / "layout.yaml")])
    assert code == 0 and [s["specs"] for s in doc["spec_sets"]] == [str(good)]


def test_validate_files_in_text_reports_every_set(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    for directory, layout in ((good, MAPPING), (bad, BAD)):
        directory.mkdir()
        (directory / "stores.yaml").write_text(GOOD)
        (directory / "layout.yaml").write_text(layout)
    result = CliRunner().invoke(main, ["validate", str(bad / "layout.yaml"), str(good / "layout.yaml")])
    assert result.exit_code == 1
    assert f"Specs in {good} are valid: 2 store(s), 1 mapping(s)." in result.stdout
    assert 'layout.yaml:4: mappings[0].to: ' in result.stderr
    assert f"1 problem in the specs in {bad}/; nothing was touched" in result.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [("notes.txt", "not a spec file"), (".hidden.yaml", "pixel skips dotfiles"), ("gone.yaml", "no such file")],
)
def test_validate_refuses_a_file_pixel_would_never_read(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "a.yaml").write_text(GOOD + MAPPING)
    if name != "gone.yaml":
        (tmp_path / name).write_text(GOOD)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / name)])
    assert result.exit_code == 1
    assert message in result.stderr and name in result.stderr


def test_explain_json_carries_what_the_text_says() -> None:
    found = explanation(fixed_desired(), observed(), fixed_plan(), "datasets/gdrive/raw/notes.json")
    doc = json.loads(json.dumps(found.doc))  # plain JSON, nothing the encoder would need help with
    assert doc["format_version"] == 1 and doc["covered"] is True and doc["verdict"] == "actions"
    [mapping] = doc["mappings"]
    assert mapping["name"] == "raw" and mapping["managed"] is True and mapping["prune"] is True
    assert mapping["local_side"] == {
        "store": "staging", "key": "raw/notes.json", "present": True, "size": 2048, "md5": MD5_A
    }
    assert mapping["state"] == "different" and mapping["rule"] == "push"
    [action] = doc["actions"]
    assert action["kind"] == "upload" and action["key"] == "datasets/gdrive/raw/notes.json"
    assert "content differs" in action["reason"]
    text = "\n".join(render_text(found))
    assert "state different (manifest status out_of_sync): under authority local the rule is push" in text


@pytest.mark.parametrize(
    ("key", "verdict"),
    [("datasets/gdrive/raw/same.json", "leaves_it"), ("elsewhere/x", "not_covered")],
)
def test_explain_json_verdicts(key: str, verdict: str) -> None:
    doc = explanation(fixed_desired(), observed(), fixed_plan(), key).doc
    assert doc["verdict"] == verdict and doc["actions"] == []


@pytest.mark.integration
def test_verify_and_explain_json_against_seaweedfs(seaweed: Any, bucket: str, tmp_path: Path) -> None:
    specs = write_world(tmp_path, seaweed.endpoint, bucket)
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="v/plain.txt", Body=b"plain", Metadata={"md5": md5(b"plain")})
    client.put_object(Bucket=bucket, Key=f"actors/{DISCOVERED}/{DISCOVERED}_0.jpg", Body=b"jpeg 0")
    client.put_object(
        Bucket=bucket, Key=f"actors/{LISTED}/{LISTED}_0.jpg", Body=b"jpeg 42", Metadata={"md5": md5(b"not 42")}
    )

    run = pixel_in_process(["verify", "--specs", str(specs), "--format", "json", "--download"], env)
    assert run.code == 1, run.err
    doc = json.loads(run.out)
    assert doc["format_version"] == 1 and doc["status"] == "mismatch" and doc["download"] is True
    # The mismatch is found in the records (metadata md5 vs ETag) before any byte of it is read.
    assert doc["verified"] == 3 and doc["bytes_read"] == len(b"plain") + len(b"jpeg 0")
    assert doc["counts"] == {"ok": 2, "mismatch": 1, "unrecorded": 0, "vanished": 0, "absent": 2}
    by_key = {o["key"]: o for o in doc["objects"]}
    assert by_key[f"actors/{LISTED}/{LISTED}_0.jpg"]["status"] == "mismatch"
    assert by_key["processed/cot_reasoning/clinical_cot.jsonl"]["status"] == "absent"
    assert "v/plain.txt" not in by_key  # an ok object is only counted
    assert all(o["store"] == "s3" for o in doc["objects"])

    client.put_object(
        Bucket=bucket, Key=f"actors/{LISTED}/{LISTED}_0.jpg", Body=b"jpeg 42", Metadata={"md5": md5(b"jpeg 42")}
    )
    run = pixel_in_process(["verify", "--specs", str(specs), "--format", "json"], env)
    assert run.code == 0, run.err
    assert json.loads(run.out)["status"] == "ok"

    run = pixel_in_process(["explain", "--specs", str(specs), "--format", "json", "s3:v/plain.txt"], env)
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["key"] == "s3:v/plain.txt" and doc["store"] == "s3" and doc["verdict"] == "in_sync"
    assert doc["store_key"] == "v/plain.txt"
    [mapping] = doc["mappings"]
    assert mapping["name"] == "plain" and mapping["state"] == "synced"
    assert mapping["remote_side"] == {"store": "s3", "key": "v/plain.txt", "present": True, "size": 5,
                                      "md5": md5(b"plain")}
