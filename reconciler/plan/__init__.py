"""The pure planner, its dependency graph and its renderings."""

from reconciler.plan.diff import plan

__all__ = ["plan"]
