"""Carrying out a plan: DAG walk, retries, and the per-action work against stores."""

from reconciler.apply.executor import ApplyResult, Outcome, Reporter, execute
from reconciler.apply.runner import ActionRunner
from reconciler.stores.retry import RetryPolicy

__all__ = ["ActionRunner", "ApplyResult", "Outcome", "Reporter", "RetryPolicy", "execute"]
