"""The plan's action DAG as Graphviz dot or Mermaid, one cluster per tier, for reviewing order.

An action belongs to the tier its S3 target (or, for a download or a release, its
S3 source) lies in; actions outside every tier (actor images, local manifests,
the registry) are clustered by the mapping that planned them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from reconciler.choices import OutputFormat
from reconciler.model import Action, Plan, TierSpec, tier_of
from reconciler.plan.render import sort_key, symbol, target_text

FORMATS = ("dot", "mermaid")


def _label(action: Action) -> str:
    return f"{symbol(action)} {action.kind.value} {target_text(action)}"


def cluster_of(action: Action, tiers: Sequence[TierSpec]) -> str:
    for ref in (action.target, action.source):
        if ref is not None:
            tier = tier_of(tiers, ref.store, ref.key)
            if tier is not None:
                return f"tier {tier.name}"
    return action.mapping


def clusters(actions: Iterable[Action], tiers: Sequence[TierSpec]) -> dict[str, list[Action]]:
    grouped: dict[str, list[Action]] = defaultdict(list)
    for action in actions:
        grouped[cluster_of(action, tiers)].append(action)
    return {name: sorted(grouped[name], key=sort_key) for name in sorted(grouped)}


def render_dot(plan: Plan, tiers: Sequence[TierSpec] = ()) -> str:
    ids = {a.id: f"n{i}" for i, a in enumerate(plan.actions)}
    lines = ["digraph pixel_plan {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for index, (mapping, actions) in enumerate(clusters(plan.actions, tiers).items()):
        # json.dumps gives a double-quoted string with escapes dot also understands.
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={json.dumps(mapping)};")
        for action in actions:
            lines.append(f"    {ids[action.id]} [label={json.dumps(_label(action))}];")
        lines.append("  }")
    for before, after in plan.edges:
        lines.append(f"  {ids[before]} -> {ids[after]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid labels are double-quoted; a quote inside uses its entity form.
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(plan: Plan, tiers: Sequence[TierSpec] = ()) -> str:
    ids = {a.id: f"n{i}" for i, a in enumerate(plan.actions)}
    lines = ["flowchart LR"]
    for index, (mapping, actions) in enumerate(clusters(plan.actions, tiers).items()):
        lines.append(f"  subgraph c{index}[{_mermaid_text(mapping)}]")
        for action in actions:
            lines.append(f"    {ids[action.id]}[{_mermaid_text(_label(action))}]")
        lines.append("  end")
    for before, after in plan.edges:
        lines.append(f"  {ids[before]} --> {ids[after]}")
    return "\n".join(lines) + "\n"


def render_graph(plan: Plan, fmt: OutputFormat = OutputFormat.DOT, tiers: Sequence[TierSpec] = ()) -> str:
    if fmt == OutputFormat.MERMAID:
        return render_mermaid(plan, tiers)
    return render_dot(plan, tiers)
