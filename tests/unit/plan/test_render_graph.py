"""pixel graph: the DAG as dot and Mermaid, one cluster per tier (else per mapping), every edge present."""

from __future__ import annotations

import dataclasses
import json
import re

from reconciler.choices import OutputFormat
from reconciler.plan.render import target_text
from reconciler.plan.render_graph import render_graph
from tests.unit.plan.fixed_plan import fixed_desired, fixed_plan


def test_dot_clusters_by_mapping_and_keeps_every_edge() -> None:
    plan = fixed_plan()
    text = render_graph(plan, OutputFormat.DOT)
    assert text.startswith("digraph pixel_plan {") and text.rstrip().endswith("}")
    assert [m for m in re.findall(r'label="([^"]+)";', text)] == ["processed", "raw", "registry"]


def test_with_tiers_the_clusters_are_the_tiers_the_targets_lie_in() -> None:
    plan, tiers = fixed_plan(), fixed_desired().tiers
    text = render_graph(plan, OutputFormat.DOT, tiers)
    labels = re.findall(r'label="([^"]+)";', text)
    assert labels == sorted(labels) and "tier processed" in labels
    in_tier = [a for a in plan.actions if a.target.key.startswith("datasets/gdrive/processed/")]
    assert in_tier  # the fixed plan writes into the processed tier
    cluster = text[text.index('label="tier processed";') :].split("}")[0]
    assert all(json.dumps(target_text(a))[1:-1] in cluster for a in in_tier)
    assert len(re.findall(r"n\d+ -> n\d+;", text)) == len(plan.edges)
    assert len(re.findall(r"n\d+ -> n\d+;", text)) == len(plan.edges)
    assert '"+ move datasets/acquired/mix.jsonl => datasets/gdrive/processed/priority/mix.jsonl"' in text


def test_mermaid_clusters_by_mapping_and_escapes_quotes() -> None:
    plan = fixed_plan()
    text = render_graph(plan, OutputFormat.MERMAID)
    assert text.startswith("flowchart LR\n")
    assert text.count("  subgraph ") == 3 and text.count("  end\n") == 3
    assert len(re.findall(r"n\d+ --> n\d+", text)) == len(plan.edges)
    ids = {a.id: i for i, a in enumerate(plan.actions)}
    move = "move:pixel-data:datasets/gdrive/processed/priority/mix.jsonl"
    delete = "delete:pixel-data:datasets/acquired/mix.jsonl"
    assert f"n{ids[move]} --> n{ids[delete]}" in text


def test_quotes_in_keys_cannot_break_a_label() -> None:
    plan = fixed_plan()
    odd = dataclasses.replace(plan.actions[0], target=dataclasses.replace(plan.actions[0].target, key='a"b.jsonl'))
    plan = dataclasses.replace(plan, actions=(odd, *plan.actions[1:]))
    assert "a#quot;b.jsonl" in render_graph(plan, OutputFormat.MERMAID)
    assert 'a\\"b.jsonl' in render_graph(plan, OutputFormat.DOT)
