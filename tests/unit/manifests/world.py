"""A small training-data world on in-memory stores: specs on disk, stores in memory, plan/apply/replan."""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.actor_layout import with_discovered
from reconciler.apply import ActionRunner, execute
from reconciler.apply.executor import ApplyResult
from reconciler.apply.manifest_writer import ManifestWriter
from reconciler.model import Desired, Observed, Plan
from reconciler.observe import StreamingHasher, observe
from reconciler.observe.world import discover_actors
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.spec import load_desired
from reconciler.stores.base import Store
from reconciler.stores.memory import MemoryStore

SPECS = """\
stores:
  lake: {type: s3, bucket: pixel-data, endpoint: "http://s3.test:8333", addressing_style: path}
  assets: {type: s3, bucket: story-boards-assets, region: us-west-1}
  ws: {type: local, root: ws}
tiers:
  raw: {at: "lake:datasets/gdrive/raw/", ownership: exclusive}
  processed:
    at: "lake:datasets/gdrive/processed/"
    categories: [cot_reasoning, professional_therapeutic, priority, edge_cases]
    protect: true
  actors: {at: "assets:system_actors/training_data/", ownership: shared}
inventory: {path: "ws:ai/training_ready/data/s3_manifest.json"}
datasets:
  registry: ws:ai/data/dataset_registry.json
  items:
    - {name: reasoning, tier: processed, category: cot_reasoning, format: jsonl,
       source: "lake:datasets/gdrive/raw/cot/reasoning.jsonl", stages: [stage1]}
    - {name: crisis, tier: processed, category: edge_cases, format: json,
       source: "lake:datasets/gdrive/raw/edge/crisis.json", organise: move}
    - {name: notes, tier: processed, category: priority, format: jsonl, source: "ws:local/notes.jsonl"}
    - {name: ghost, tier: processed, category: priority, format: json}
actors:
  local: ws:data/actors
  s3: assets:system_actors/training_data/
  manifests: ws:data/actor_manifests
  authority: local
  discover: '^(?P<id>\\d{4})_.+$'
  list:
    - {id: "0042", name: 0042_european_30_male, count: 5, authority: none}
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def jpeg(seed: int) -> bytes:
    """Not a real picture: a JPEG start/end marker around deterministic bytes is all these tests need."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(str(seed).encode()).digest() * (seed % 3 + 1) + b"\xff\xd9"


@dataclass
class World:
    spec_dir: Path
    ws: MemoryStore = field(default_factory=lambda: MemoryStore("ws"))
    lake: MemoryStore = field(default_factory=lambda: MemoryStore("lake"))
    assets: MemoryStore = field(default_factory=lambda: MemoryStore("assets"))
    clock_ns: int = 1_760_000_000_000_000_000

    @property
    def stores(self) -> dict[str, Store]:
        return {"ws": self.ws, "lake": self.lake, "assets": self.assets}

    def desired(self) -> Desired:
        declared = load_desired(self.spec_dir, {})
        return with_discovered(declared, discover_actors(declared, self.stores))

    def observe(self) -> tuple[Desired, Observed]:
        desired = self.desired()
        return desired, observe(desired, self.stores, StreamingHasher())

    def plan(self) -> Plan:
        desired, observed = self.observe()
        return plan(desired, observed)

    def apply(self) -> tuple[Plan, ApplyResult, ManifestWriter]:
        desired, observed = self.observe()
        result_plan = plan(desired, observed)
        writer = ManifestWriter(desired, self.stores, clock=lambda: self.clock_ns)
        runner = ActionRunner(self.stores, manifests=writer)
        result = execute(build_graph(result_plan), runner, parallelism=4)
        return result_plan, result, writer


ACTOR = "0042_european_30_male"
ACTOR_DIR = f"data/actors/{ACTOR}/training_data"
S3_DIR = f"system_actors/training_data/{ACTOR}"


def build(tmp_path: Path, extra: str = "") -> World:
    """The world above; `extra` is one more spec file (mappings, say) in the same directory."""
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "world.yaml").write_text(textwrap.dedent(SPECS))
    if extra:
        (spec_dir / "extra.yaml").write_text(textwrap.dedent(extra))
    w = World(spec_dir)
    # Actor 0042 (authority none): one image in each of the four states, an orphan, a missing index 4.
    w.ws.put(f"{ACTOR_DIR}/{ACTOR}_0.jpg", jpeg(0))
    w.assets.put(f"{S3_DIR}/{ACTOR}_0.jpg", jpeg(0))
    w.ws.put(f"{ACTOR_DIR}/{ACTOR}_1.jpg", jpeg(1))
    w.assets.put(f"{S3_DIR}/{ACTOR}_2.jpg", jpeg(2))
    w.ws.put(f"{ACTOR_DIR}/{ACTOR}_3.jpg", jpeg(3))
    w.assets.put(f"{S3_DIR}/{ACTOR}_3.jpg", jpeg(33))
    w.ws.put(f"{ACTOR_DIR}/response.json", b"{}")
    # A discovered actor (authority local): two images to upload.
    w.ws.put("data/actors/0007_asian_25_female/training_data/0007_asian_25_female_0.jpg", jpeg(7))
    w.ws.put("data/actors/0007_asian_25_female/training_data/0007_asian_25_female_1.jpg", jpeg(8))
    # Raw objects to organise, and a local dataset file.
    w.lake.put("datasets/gdrive/raw/cot/reasoning.jsonl", b'{"q": 1}\n{"q": 2}\n')
    w.lake.put("datasets/gdrive/raw/edge/crisis.json", b'{"crisis": true}')
    w.ws.put("local/notes.jsonl", b'{"n": 1}\n')
    return w
