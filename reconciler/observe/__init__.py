"""Build the Observed state from the stores."""

from reconciler.observe.hashing import Hasher, StreamingHasher
from reconciler.observe.observer import observe

__all__ = ["Hasher", "StreamingHasher", "observe"]
