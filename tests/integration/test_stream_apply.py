"""`pixel apply --scale stream FILE` on SeaweedFS: the same end state as `pixel apply FILE`, byte for byte.

Two identical worlds (equal-length bucket names and roots, so generated files are the same size), each
planned to a saved file: the two files hold the same actions and edges, one is applied in memory, the other
streamed, and the buckets and local trees they leave are compared.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.planfile import load_saved
from reconciler.model import Plan
from tests.integration.demo_world import Demo, make_demo, steady
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

pytestmark = pytest.mark.integration

def _body(data: bytes, generated: bool, names: dict[str, str]) -> Any:
    return steady(json.loads(data), names) if generated else hashlib.md5(data).hexdigest()


def _generated(key: str) -> bool:
    return key.endswith(("_manifest.json", "dataset_registry.json", "final_dataset/manifest.json"))


def _s3_state(client: Any, bucket: str, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(".pixel/"):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = _body(body, _generated(obj["Key"]), names)
    return out


def _local_state(root: Path, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".pixel" not in path.parts:
            rel = str(path.relative_to(root))
            out[rel] = _body(path.read_bytes(), _generated(rel), names)
    return out


def _same_plan(one: Path, two: Path) -> int:
    """The two saved plans hold the same actions and edges: the same work on the same keys (their spec digests
    name their own worlds, and a local file's version token its own inode and mtime)."""
    first, second = load_saved(one).plan, load_saved(two).plan

    def work(plan: Plan) -> list[tuple[object, ...]]:
        return [(a.id, a.kind, a.target, a.source, a.size, a.md5) for a in plan.actions]

    assert work(first) == work(second)
    assert first.edges == second.edges
    return len(first.actions)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _sync_world(tmp: Path, seaweed: Any, bucket: str) -> tuple[Path, dict[str, str]]:
    """A mirror with a rename, an edit, a delete, a new file and a swap, and a tier released after upload."""
    root = tmp / "data"
    (root / "final").mkdir(parents=True)
    files = {f"swap{i}.jsonl": f"content {i}\n".encode() for i in (1, 2)}
    _tree(root / "raw", {"a.jsonl": b"alpha\n", "b.jsonl": b"beta\n", "gone.jsonl": b"bye\n", **files})
    specs = write_specs(
        tmp / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[
            {"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True},
            {"name": "final", "from": "disk:final", "to": "s3:final_dataset/", "release_local": True},
        ],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp / "cache")}
    first = pixel_in_process(["apply", "--auto-approve", "--specs", str(specs)], env)
    assert first.code == 0, first.err
    (root / "raw" / "a.jsonl").rename(root / "raw" / "renamed.jsonl")
    (root / "raw" / "b.jsonl").write_bytes(b"beta, edited\n")
    (root / "raw" / "gone.jsonl").unlink()
    swapped = {"swap1.jsonl": files["swap2.jsonl"], "swap2.jsonl": files["swap1.jsonl"]}
    _tree(root / "raw", {"new.jsonl": b"new\n", **swapped})
    _tree(root / "final", {"train-0.jsonl": b'{"n": 0}\n', "train-1.jsonl": b'{"n": 1}\n'})
    return specs, env


def _apply(specs: Path, env: dict[str, str], plan_file: Path, *scale: str) -> Run:
    return pixel_in_process(["apply", *scale, "--specs", str(specs), str(plan_file)], env)


def test_a_swap_a_rename_deletes_and_releases_end_as_the_in_memory_apply(
    tmp_path: Path, seaweed: Any, bucket: str, request: pytest.FixtureRequest
) -> None:
    buckets = [f"{bucket[:40]}-{side}" for side in "ms"]
    worlds = []
    for side, name in zip("ms", buckets, strict=True):
        seaweed.create_bucket(name)
        request.addfinalizer(functools.partial(seaweed.delete_bucket, name))
        specs, env = _sync_world(tmp_path / side, seaweed, name)
        plan_file = tmp_path / side / "plan.json"
        planned = pixel_in_process(["plan", "--specs", str(specs), "-out", str(plan_file)], env)
        assert planned.code == 0, planned.err
        worlds.append((specs, env, plan_file))
    assert _same_plan(worlds[0][2], worlds[1][2]) > 0
    kinds = {a.kind.value for a in load_saved(worlds[0][2]).plan.actions}
    assert kinds >= {"upload", "move", "copy", "delete", "verify", "release-local"}

    in_memory = _apply(*worlds[0])
    streamed = _apply(*worlds[1], "--scale", "stream")
    assert in_memory.code == 0, in_memory.err
    assert streamed.code == 0, streamed.err
    assert "streamed" in streamed.out and "Apply complete!" in streamed.out

    client = seaweed.client()
    names = [{name: "<bucket>", str(tmp_path / side): "<root>"} for side, name in zip("ms", buckets, strict=True)]
    assert _s3_state(client, buckets[1], names[1]) == _s3_state(client, buckets[0], names[0])
    assert _local_state(tmp_path / "s" / "data", names[1]) == _local_state(tmp_path / "m" / "data", names[0])
    assert not (tmp_path / "s" / "data" / "final" / "train-0.jsonl").exists()  # released after its verify
    again = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(worlds[1][0])], worlds[1][1])
    assert again.code == 0, again.out


def test_manifests_and_the_demo_world_end_as_the_in_memory_apply(
    tmp_path: Path, seaweed: Any, bucket: str, request: pytest.FixtureRequest
) -> None:
    names = [f"{bucket[:40]}-{side}" for side in "ms"]
    for name in names:
        for created in (name, f"{name}-actors"):
            request.addfinalizer(functools.partial(seaweed.delete_bucket, created))
    demos: list[Demo] = [make_demo(tmp_path / side, seaweed, name) for side, name in zip("ms", names, strict=True)]
    files = []
    for demo, side in zip(demos, "ms", strict=True):
        plan_file = tmp_path / side / "plan.json"
        assert demo.pixel("plan", "-out", str(plan_file)).code == 0
        files.append(plan_file)
    assert _same_plan(*files) > 0
    assert {a.kind.value for a in load_saved(files[0]).plan.actions} >= {"write-manifest", "move", "delete"}

    in_memory = demos[0].pixel("apply", str(files[0]))
    streamed = demos[1].pixel("apply", "--scale", "stream", str(files[1]))
    assert in_memory.code == 0, in_memory.err
    assert streamed.code == 0, streamed.err

    aliases = [{d.data_bucket: "<bucket>", str(d.root): "<root>"} for d in demos]
    for which in ("data_bucket", "actor_bucket"):
        ours, theirs = (_s3_state(d.client, getattr(d, which), a) for d, a in zip(demos, aliases, strict=True))
        assert theirs == ours
    assert _local_state(demos[1].root, aliases[1]) == _local_state(demos[0].root, aliases[0])
    assert demos[1].pixel("plan", "--detailed-exitcode").code == 0


def test_a_streamed_apply_refuses_what_apply_refuses_and_touches_nothing(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    specs, env = _sync_world(tmp_path, seaweed, bucket)
    plan_file = tmp_path / "plan.json"
    assert pixel_in_process(["plan", "--specs", str(specs), "-out", str(plan_file)], env).code == 0
    client = seaweed.client()
    before = _s3_state(client, bucket, {})
    stream = ("--scale", "stream")

    # A guard tightened at apply: the plan's deletes exceed it.
    tight = pixel_in_process(["apply", *stream, "--max-delete", "0", "--specs", str(specs), str(plan_file)], env)
    assert tight.code == 1
    assert "--max-delete" in tight.err and "nothing was touched" in tight.err
    # A guard loosened at apply is refused, never silently ignored.
    loose = pixel_in_process(["apply", *stream, "--allow-mass-delete", "--specs", str(specs), str(plan_file)], env)
    assert loose.code == 1 and "would loosen the saved plan's guards" in loose.err
    # A hand-edited action that reaches outside its mapping.
    document = json.loads(plan_file.read_text())
    (new,) = (a for a in document["actions"] if a["key"] == "datasets/raw/new.jsonl")
    new["key"] = "elsewhere/new.jsonl"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    outside = _apply(specs, env, edited, *stream)
    assert outside.code == 1
    assert "lies outside what mapping 'raw' manages" in outside.err and "nothing was touched" in outside.err
    # Tampered with: the guard digest no longer matches.
    document = json.loads(plan_file.read_text())
    document["guard_limits"]["max_delete"] += 1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    digest = _apply(specs, env, tampered, *stream)
    assert digest.code == 1 and "the guard digest does not match" in digest.err
    # Stale: the specs changed since the plan.
    (specs / "specs.yaml").write_text((specs / "specs.yaml").read_text().replace("prune: true", "prune: false"))
    stale = _apply(specs, env, plan_file, *stream)
    assert stale.code == 1 and "plan is stale" in stale.err
    assert _s3_state(client, bucket, {}) == before
    assert list((tmp_path / "cache" / "spill").iterdir()) == []  # each refusal removed its spill
