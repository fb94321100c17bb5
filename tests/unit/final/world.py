"""A Desired with a final dataset, and Observed states around it, for the pure tests."""

from __future__ import annotations

from types import EllipsisType
from typing import Any

from reconciler.manifests.final import FORMAT, VERSION, build_id, render
from reconciler.model import Desired, Entry, FinalObserved, GeneratedFile, Observed
from reconciler.spec import load_desired

SPEC = """stores:
  lake: {type: s3, bucket: lake, endpoint: "http://127.0.0.1:1"}
  disk: {type: local, root: data}
tiers:
  processed: {at: "lake:datasets/processed/"}
datasets:
  items:
    - {name: alpha, tier: processed, category: c, format: jsonl, stages: [one]}
    - {name: beta, tier: processed, category: c, format: jsonl, stages: [two]}
final_dataset:
  sources: [alpha, {stages: [two]}]
  splits: {train: 0.9, validation: 0.05, test: 0.05}
  split_key: id
  shard: {records: 100, bytes: 1 MiB}
  dedupe: true
  to: lake:final_dataset/
  compiled: final_dataset/compiled/final_training_dataset.jsonl
  manifest: {key: final_dataset/manifest.json, local: "disk:kept/manifest.json"}
  workdir: disk:work
"""

MD5 = {"alpha": "a1b2" + "0" * 28, "beta": "c3d4" + "0" * 28}


def desired(tmp_path: Any, spec: str = SPEC) -> Desired:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "final.yaml").write_text(spec)
    return load_desired(tmp_path / "specs", {})


def source_entries(md5s: dict[str, str] = MD5) -> dict[str, Entry | None]:
    return {name: Entry(f"datasets/processed/c/{name}.jsonl", 100, md5, etag=md5) for name, md5 in md5s.items()}


def published(d: Desired, md5s: dict[str, str] = MD5, **changes: Any) -> tuple[bytes, dict[str, Entry]]:
    """A manifest built from `md5s` with one train shard, and the objects it names, as observed."""
    final = d.final
    assert final is not None
    import json

    recipe = json.loads(final.recipe)
    recipe["digest"] = final.recipe_digest
    shard = {"split": "train", "id": "shard-00000-aaaa", "key": "final_dataset/train/shard-00000-aaaa.jsonl",
             "s3_url": "s3://lake/final_dataset/train/shard-00000-aaaa.jsonl", "md5": "e" * 32, "size": 10,
             "records": 2}
    compiled = {"key": final.compiled_key, "s3_url": "", "md5": "f" * 32, "size": 10, "records": 2}
    document = {
        "format": FORMAT, "version": VERSION, "created": "2026-01-01T00:00:00Z",
        "build": build_id(final, md5s) if set(md5s) == {s.name for s in final.sources} else "other",
        "recipe": recipe, "sources": [{"name": n, "key": f"datasets/processed/c/{n}.jsonl", "md5": m, "size": 100}
                                      for n, m in md5s.items()],
        "splits": {"train": {"shards": 1, "records": 2, "bytes": 10}}, "shards": [shard], "compiled": compiled,
        "counts": {"read": 2, "duplicates": 0, "written": {"train": 2}},
    }
    document.update(changes)
    objects = {
        str(shard["key"]): Entry(str(shard["key"]), 10, "e" * 32, etag="e" * 32),
        final.compiled_key: Entry(final.compiled_key, 10, "f" * 32, etag="f" * 32),
    }
    return render(document), objects


def observed(
    manifest: bytes | None,
    objects: dict[str, Entry],
    sources: dict[str, Entry | None] | None = None,
    local: bytes | EllipsisType | None = ...,  # ...: the kept local copy is the published manifest
) -> Observed:
    kept = manifest if isinstance(local, EllipsisType) else local
    final = FinalObserved(
        manifest=GeneratedFile(Entry("final_dataset/manifest.json", len(manifest), None, etag="m1"), manifest)
        if manifest is not None else GeneratedFile(),
        objects={**objects, **({"final_dataset/manifest.json": Entry("final_dataset/manifest.json", 1, None)}
                               if manifest is not None else {})},
        sources=source_entries() if sources is None else sources,
        local_manifest=GeneratedFile(Entry("kept/manifest.json", len(kept), None, etag="1-1"), kept)
        if kept is not None else GeneratedFile(),
    )
    return Observed(mappings={}, final=final)
