"""The plan's action DAG as Graphviz dot or Mermaid, one cluster per tier, for reviewing order.

An action belongs to the tier its S3 target (or, for a download or a release, its
S3 source) lies in; actions outside every tier (actor images, local manifests,
the registry) are clustered by the mapping that planned them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class _Syntax:
    """How one graph language writes the same walk: str.format templates, and `quote`, which makes a label one of
    its string literals."""

    head: tuple[str, ...]
    cluster: str  # {index}, {label}
    node: str  # {id}, {label}
    cluster_end: str
    edge: str  # {before}, {after}
    tail: tuple[str, ...]
    quote: Callable[[str], str]


def _mermaid_text(text: str) -> str:
    # Mermaid labels are double-quoted; a quote inside uses its entity form.
    return '"' + text.replace('"', "#quot;") + '"'


_DOT = _Syntax(
    head=("digraph pixel_plan {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];'),
    cluster="  subgraph cluster_{index} {{\n    label={label};",
    node="    {id} [label={label}];",
    cluster_end="  }",
    edge="  {before} -> {after};",
    tail=("}",),
    quote=json.dumps,  # a double-quoted string with escapes dot also understands
)
_MERMAID = _Syntax(
    head=("flowchart LR",),
    cluster="  subgraph c{index}[{label}]",
    node="    {id}[{label}]",
    cluster_end="  end",
    edge="  {before} --> {after}",
    tail=(),
    quote=_mermaid_text,
)


def _render(plan: Plan, tiers: Sequence[TierSpec], syntax: _Syntax) -> str:
    ids = {a.id: f"n{i}" for i, a in enumerate(plan.actions)}
    lines = list(syntax.head)
    for index, (mapping, actions) in enumerate(clusters(plan.actions, tiers).items()):
        lines.append(syntax.cluster.format(index=index, label=syntax.quote(mapping)))
        lines.extend(syntax.node.format(id=ids[a.id], label=syntax.quote(_label(a))) for a in actions)
        lines.append(syntax.cluster_end)
    lines.extend(syntax.edge.format(before=ids[before], after=ids[after]) for before, after in plan.edges)
    lines.extend(syntax.tail)
    return "\n".join(lines) + "\n"


def render_dot(plan: Plan, tiers: Sequence[TierSpec] = ()) -> str:
    return _render(plan, tiers, _DOT)


def render_mermaid(plan: Plan, tiers: Sequence[TierSpec] = ()) -> str:
    return _render(plan, tiers, _MERMAID)


def render_graph(plan: Plan, fmt: OutputFormat = OutputFormat.DOT, tiers: Sequence[TierSpec] = ()) -> str:
    if fmt == OutputFormat.MERMAID:
        return render_mermaid(plan, tiers)
    return render_dot(plan, tiers)
