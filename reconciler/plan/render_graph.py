"""The plan's action DAG as Graphviz dot or Mermaid, one cluster per mapping or tier, for reviewing order."""

from __future__ import annotations

import json

from reconciler.model import Action, Plan
from reconciler.plan.render import SYMBOL, group_by_mapping, target_text

FORMATS = ("dot", "mermaid")


def _label(action: Action) -> str:
    return f"{SYMBOL[action.change]} {action.kind.value} {target_text(action)}"


def render_dot(plan: Plan) -> str:
    ids = {a.id: f"n{i}" for i, a in enumerate(plan.actions)}
    lines = ["digraph pixel_plan {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for index, (mapping, actions) in enumerate(group_by_mapping(plan.actions).items()):
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


def render_mermaid(plan: Plan) -> str:
    ids = {a.id: f"n{i}" for i, a in enumerate(plan.actions)}
    lines = ["flowchart LR"]
    for index, (mapping, actions) in enumerate(group_by_mapping(plan.actions).items()):
        lines.append(f"  subgraph c{index}[{_mermaid_text(mapping)}]")
        for action in actions:
            lines.append(f"    {ids[action.id]}[{_mermaid_text(_label(action))}]")
        lines.append("  end")
    for before, after in plan.edges:
        lines.append(f"  {ids[before]} --> {ids[after]}")
    return "\n".join(lines) + "\n"


def render_graph(plan: Plan, fmt: str = "dot") -> str:
    if fmt == "mermaid":
        return render_mermaid(plan)
    return render_dot(plan)
