"""The pure planner, its dependency graph and its renderings."""

from reconciler.plan.planner import plan

__all__ = ["plan"]
