"""`model.dataclass`: the stdlib's dataclass, its `__eq__`/`__hash__` compiled on first call and `__repr__` shared.

Importing the model must not compile a method per class it may never call (it was a third of the import of
every `pixel` run), and the methods it ends up with must answer exactly what dataclasses' own would.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import model

VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.tuples(st.integers()))


@model.dataclass(frozen=True, slots=True)
class Ours:
    a: Any
    b: Any = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Theirs:
    a: Any
    b: Any = 0


@model.dataclass(frozen=True, slots=True)
class One:
    a: Any


@given(a=VALUES, b=VALUES, c=VALUES, d=VALUES)
def test_eq_hash_and_repr_are_what_dataclasses_writes(a: Any, b: Any, c: Any, d: Any) -> None:
    ours, theirs = (Ours(a, b), Ours(c, d)), (Theirs(a, b), Theirs(c, d))
    assert (ours[0] == ours[1]) == (theirs[0] == theirs[1])
    assert (ours[0] != ours[1]) == (theirs[0] != theirs[1])
    assert hash(ours[0]) == hash(theirs[0]) == hash((a, b))
    assert repr(ours[0]).removeprefix(Ours.__qualname__) == repr(theirs[0]).removeprefix(Theirs.__qualname__)
    other: object = theirs[0]
    assert ours[0] != other and ours[0].__eq__(other) is NotImplemented  # another class is never equal
    assert hash(One(a)) == hash((a,)) and One(a) == One(a)
    assert dataclasses.replace(ours[0], b=c) == Ours(a, c)


def test_frozen_slotted_and_a_method_of_the_class_body_is_kept() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ours(1).a = 2  # type: ignore[misc]
    assert not hasattr(Ours(1), "__dict__")

    @model.dataclass(frozen=True, slots=True)
    class Own:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

        def __repr__(self) -> str:
            return "own"

    assert Own(1) == Own(2) and hash(Own(1)) == 7 and repr(Own(1)) == "own"

    @model.dataclass()
    class Mutable:
        a: int

    assert Mutable(1) == Mutable(1)
    with pytest.raises(TypeError, match="unhashable"):
        hash(Mutable(1))


def test_importing_the_model_compiles_no_eq_or_hash() -> None:
    """dataclasses compiles each generated method from source, wrapped in a `__create_fn__` (an `exec` audit
    event each): __init__, and for frozen classes __setattr__ and __delattr__, are all the import may compile."""
    script = (
        "import sys, json\n"
        "compiled = []\n"
        "def hook(event, args):\n"
        "    if event == 'exec' and '__create_fn__' in getattr(args[0], 'co_names', ()):\n"
        "        compiled.append(1)\n"
        "sys.addaudithook(hook)\n"
        "import reconciler.model as model, dataclasses\n"
        "classes = [c for c in vars(model).values() if isinstance(c, type) and dataclasses.is_dataclass(c)"
        " and c.__module__ == model.__name__]\n"
        "print(json.dumps([len(compiled), len(classes)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    compiled, classes = json.loads(done.stdout)
    assert classes > 20
    assert compiled <= 3 * classes, f"{compiled} functions compiled for {classes} dataclasses"
