"""Carrying out a plan: DAG walk, retries, and the per-action work against stores."""

from reconciler.apply.executor import ApplyResult, Outcome, Reporter, RetryPolicy, execute
from reconciler.apply.runner import ActionRunner

__all__ = ["ActionRunner", "ApplyResult", "Outcome", "Reporter", "RetryPolicy", "execute"]
