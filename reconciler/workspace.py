"""A Workspace: the specs, the stores opened for them and the actors discovered when they were opened.

Immutable: the service shares one between request threads, so a step that changes what a workspace holds
(observing through S3 Inventory reports, binding the stores to an apply's lock) returns a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reconciler.actor_layout import with_discovered
from reconciler.model import Desired, DiscoveredActor
from reconciler.stores.base import Store


@dataclass(frozen=True)
class Workspace:
    declared: Desired  # what the specs say, before discovery
    stores: Mapping[str, Store]
    # Stores observed other than by listing them (--observe inventory); actions always use `stores`.
    observed_through: Mapping[str, Store] = field(default_factory=dict)
    # Actor directories listed when the stores were opened: observed state, not specs.
    discovered: tuple[DiscoveredActor, ...] = ()
    desired: Desired = field(init=False)

    def __post_init__(self) -> None:
        # Read-only views: a caller holding the workspace cannot swap a store under another thread's feet.
        object.__setattr__(self, "stores", MappingProxyType(dict(self.stores)))
        object.__setattr__(self, "observed_through", MappingProxyType(dict(self.observed_through)))
        # The view every consumer reads (status, verify, saved-plan checks, manifests, service): the
        # specs with one actor and mapping per discovered actor. Derived once; plan() derives the same.
        object.__setattr__(self, "desired", with_discovered(self.declared, self.discovered))

    @property
    def observing(self) -> Mapping[str, Store]:
        return {**self.stores, **self.observed_through}
