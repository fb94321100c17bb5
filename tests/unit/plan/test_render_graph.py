"""pixel graph: the DAG as dot and Mermaid, one cluster per mapping, every edge present."""

from __future__ import annotations

import dataclasses
import re

from reconciler.plan.render_graph import render_graph
from tests.unit.plan.fixed_plan import fixed_plan


def test_dot_clusters_by_mapping_and_keeps_every_edge() -> None:
    plan = fixed_plan()
    text = render_graph(plan, "dot")
    assert text.startswith("digraph pixel_plan {") and text.rstrip().endswith("}")
    assert [m for m in re.findall(r'label="([^"]+)";', text)] == ["processed", "raw", "registry"]
    assert len(re.findall(r"n\d+ -> n\d+;", text)) == len(plan.edges)
    assert '"+ move datasets/acquired/mix.jsonl => datasets/gdrive/processed/priority/mix.jsonl"' in text


def test_mermaid_clusters_by_mapping_and_escapes_quotes() -> None:
    plan = fixed_plan()
    text = render_graph(plan, "mermaid")
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
    assert "a#quot;b.jsonl" in render_graph(plan, "mermaid")
    assert 'a\\"b.jsonl' in render_graph(plan, "dot")
