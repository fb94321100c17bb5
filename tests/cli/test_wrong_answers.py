"""Answers a person or a CI job would trust, on SeaweedFS: `pixel explain` of a managed file given as the local
path a shell completes names its mapping (it said "not covered"), and `pixel datasets` against a bucket that
does not exist is an error naming the bucket (it listed every dataset "absent" and exited 0)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.integration.pixelenv import write_specs

pytestmark = pytest.mark.integration


def invoke(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, args, env={**env, "NO_COLOR": "1"})


@pytest.fixture
def explained(tmp_path: Path, seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    root = tmp_path / "demo-data" / "gdrive"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "new_four.jsonl").write_bytes(b'{"id": 4}\n')
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=Path("../demo-data/gdrive"),  # relative to the spec directory, as the README's example
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/gdrive/raw/"}],
    )
    monkeypatch.chdir(tmp_path)
    return {"specs": specs, "env": seaweed.env(), "root": root}


@pytest.mark.parametrize(
    "path",
    ["demo-data/gdrive/raw/new_four.jsonl", "./demo-data/gdrive/raw/new_four.jsonl", "ABSOLUTE"],
)
def test_explain_resolves_a_local_path_through_the_mappings(explained: dict[str, Any], path: str) -> None:
    if path == "ABSOLUTE":
        path = str(explained["root"] / "raw" / "new_four.jsonl")
    result = invoke(["explain", "--specs", str(explained["specs"]), path], explained["env"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "not covered" not in out
    assert "the local file disk:raw/new_four.jsonl" in out
    assert "mapping 'raw'" in out and "local  disk:raw/new_four.jsonl: 10 bytes" in out
    assert "+ datasets/gdrive/raw/new_four.jsonl" in out  # the plan's upload of it


def test_explain_of_a_deleted_file_written_as_a_path_still_resolves(explained: dict[str, Any]) -> None:
    (explained["root"] / "raw" / "new_four.jsonl").unlink()
    result = invoke(
        ["explain", "--specs", str(explained["specs"]), "./demo-data/gdrive/raw/new_four.jsonl"], explained["env"]
    )
    assert "mapping 'raw'" in result.stdout and "not covered" not in result.stdout


def test_explain_of_a_bare_s3_key_is_unchanged(explained: dict[str, Any]) -> None:
    result = invoke(["explain", "--specs", str(explained["specs"]), "datasets/gdrive/raw/new_four.jsonl"],
                    explained["env"])
    assert "mapping 'raw'" in result.stdout and "the local file" not in result.stdout


def test_datasets_and_cat_against_a_missing_bucket_are_an_error_naming_it(tmp_path: Path, seaweed: Any) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "world.yaml").write_text(
        textwrap.dedent(
            f"""\
            stores:
              data: {{type: s3, bucket: no-such-bucket-here, endpoint: {seaweed.endpoint}, region: us-east-1,
                     addressing_style: path, checksum: when_required}}
              work: {{type: local, root: {tmp_path / "work"}}}
            tiers:
              processed: {{at: "data:datasets/processed/", categories: [cot]}}
            datasets:
              registry: work:registry.json
              items:
                - {{name: clinical_cot, tier: processed, category: cot, format: jsonl}}
            """
        )
    )
    result = invoke(["datasets", "--specs", str(specs)], seaweed.env())
    assert result.exit_code == 1, result.output
    assert 'bucket "no-such-bucket-here" does not exist' in result.stderr
    assert "absent" not in result.stdout

    cat = invoke(["cat", "--specs", str(specs), "clinical_cot"], seaweed.env())
    assert cat.exit_code == 1 and 'bucket "no-such-bucket-here" does not exist' in cat.stderr, cat.output
