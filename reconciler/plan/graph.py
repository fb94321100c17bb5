"""The plan's actions as a networkx DAG: an edge (a, b) means b waits for a."""

from __future__ import annotations

import networkx as nx

from reconciler.model import Action, Plan


class PlanCycleError(ValueError):
    pass


def build_graph(plan: Plan) -> nx.DiGraph[str]:
    graph: nx.DiGraph[str] = nx.DiGraph()
    for action in plan.actions:
        graph.add_node(action.id, action=action)
    for before, after in plan.edges:
        if before not in graph or after not in graph:
            raise ValueError(f"plan edge {before} -> {after} names an action that is not in the plan")
        graph.add_edge(before, after)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise PlanCycleError("plan has a dependency cycle: " + " -> ".join(str(a) for a, _ in cycle))
    return graph


def action_of(graph: nx.DiGraph[str], node: str) -> Action:
    action: Action = graph.nodes[node]["action"]
    return action
