"""Carrying out a plan: the bucket lock and the session around it, the executors (this machine's thread pool, or
batches on Dask) with their retries, the per-action work against stores (the runner, the final-dataset compile),
and what apply reports and remembers."""

from reconciler.apply.executor import ApplyResult, Outcome, Reporter, execute
from reconciler.apply.runner import ActionRunner
from reconciler.stores.retry import RetryPolicy

__all__ = ["ActionRunner", "ApplyResult", "Outcome", "Reporter", "RetryPolicy", "execute"]
