"""A Desired remembered by everything it was built from, so a warm run reads the spec files' bytes, not YAML.

The key (`inputs_digest`) is the sha256 of the spec directory's path, the working directory (a Desired's
`source_file`s are relative to it), each spec file's name and bytes, and the code that turns them into a Desired
(`spec/`, the model and the helpers the loader calls, the spec schema, PyYAML's version line): an edit to any of
them, or an upgrade of pixel, is a different key. Interpolation's inputs are recorded beside it: the names of the
variables the load read (whatever `${...}` the same bytes hold, they read the same names) and a digest of their
values then (unset counts), compared on every read. `--env-file` only sets variables, so it is covered by them.

The file is `sha256(body)` on its first line, then the body: JSON of plain data (orjson), each dataclass and
enum tagged with its class's name and built again only through a fixed table of `reconciler.model`'s classes.
Decoding JSON runs no code (unlike pickle), and a file that is truncated, corrupt, of another format, for other
inputs, or holding a shape those classes refuse, is a miss as a whole: the specs are then loaded, and the file
written again. Nothing is half-trusted. Only a Desired that loaded cleanly is written, so every error message
still comes from the loader.

Secrets: a Desired holds no credential by design (a store names the variables its keys are read from,
`credentials_env`, and `stores/s3/credentials.py` reads them when the store is built), but `${VAR}` could put
one in any field. A load that read a variable named like a secret, or whose Desired contains the value of such
a variable or of one a store names for its keys, or an endpoint with a user or password in it, is not written.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from reconciler import model
from reconciler.paths import atomic_file
from reconciler.spec.files import SpecFiles

FORMAT = 1
# Where the loader's answer comes from besides the spec files, relative to the `reconciler` package.
_CODE = (
    "model.py",
    "units.py",
    "keys.py",
    "globs.py",
    "rules.py",
    "actor_layout.py",
    "schemas/__init__.py",
    "schemas/spec.schema.json",
)
_PACKAGE = Path(__file__).resolve().parents[1]
# A variable interpolation read under a name like these is taken for a secret: wide on purpose, since a false
# match only costs that spec directory its cache.
_SECRET_READ = re.compile(r"secret|token|passw|credential|auth|signature|key|cookie|session|private", re.I)
# Variables whose values must not appear in a written Desired (with those a store names for its keys): narrower,
# as it is tested against the whole environment (XDG_SESSION_TYPE=x11 is no secret, and "x11" may be a prefix).
_SECRET_VALUE = re.compile(r"secret|token|passw|credential|signature|access_key|private_key|api_key", re.I)
_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        model.Desired,
        model.S3StoreSpec,
        model.LocalStoreSpec,
        model.InventorySource,
        model.MappingSpec,
        model.TierSpec,
        model.DatasetSpec,
        model.ObjectRef,
        model.ActorLayout,
        model.ActorSpec,
        model.FinalSource,
        model.FinalDatasetSpec,
    )
}
_ENUMS: dict[str, type[enum.StrEnum]] = {
    cls.__name__: cls for cls in (model.Authority, model.Ownership, model.Organise)
}


class Uncacheable(Exception):
    """This Desired is not written: it holds a value the plain form has no tag for, or may hold a secret."""


class _Corrupt(Exception):
    """The file is not one this module wrote for these inputs."""


def inputs_digest(read: SpecFiles) -> str | None:
    """The key, or None when pixel's own source cannot be read (a sourceless install): no cache then."""
    try:
        return _inputs_digest(read)
    except OSError:
        return None


def _inputs_digest(read: SpecFiles) -> str:
    digest = hashlib.sha256(f"pixel desired {FORMAT}\0{read.directory}\0{os.getcwd()}\0".encode())
    for file, raw in read.files:
        digest.update(f"{file.name}\0{len(raw)}\0".encode())
        digest.update(raw)
    for name, raw in _code():
        digest.update(f"{name}\0{len(raw)}\0".encode())
        digest.update(raw)
    return digest.hexdigest()


def _code() -> Iterator[tuple[str, bytes]]:
    """The bytes of the code a Desired depends on: a changed loader or model must not be handed an old answer."""
    spec = _PACKAGE / "spec"
    for file in sorted(spec.glob("*.py")):
        yield f"spec/{file.name}", file.read_bytes()
    for name in _CODE:
        yield name, (_PACKAGE / name).read_bytes()
    # YAML 1.1's readings (yes/no, octal, ...) are PyYAML's; its version line is in its __init__.
    yaml_init = _yaml_init()
    yield "yaml", yaml_init.read_bytes() if yaml_init is not None else b""


def _yaml_init() -> Path | None:
    import importlib.util

    found = importlib.util.find_spec("yaml")
    return Path(found.origin) if found is not None and found.origin else None


class RecordingEnv(Mapping[str, str]):
    """`env` as the loader sees it, remembering every name it asked for (interpolation asks with `get`)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def env_digest(names: list[str], env: Mapping[str, str]) -> str:
    return hashlib.sha256(orjson.dumps([[name, env.get(name)] for name in names])).hexdigest()


def cached(path: Path, key: str, env: Mapping[str, str]) -> model.Desired | None:
    """The Desired filed under `key` in `path` when the variables it read still hold the same values, else None."""
    try:
        text = path.read_bytes()
    except OSError:
        return None
    try:
        header, _, body = text.partition(b"\n")
        if header.decode("ascii", "replace") != hashlib.sha256(body).hexdigest():
            raise _Corrupt
        data = orjson.loads(body)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("inputs") != key:
            raise _Corrupt
        names = data.get("env")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise _Corrupt
        if data.get("env_digest") != env_digest(names, env):
            return None
        desired = _decode(data.get("desired"))
    except (_Corrupt, orjson.JSONDecodeError, TypeError, ValueError, KeyError, RecursionError):
        return None
    return desired if isinstance(desired, model.Desired) else None


def remember(path: Path, key: str, names: set[str], env: Mapping[str, str], desired: model.Desired) -> None:
    """File `desired` under `key`, unless it may hold a secret; written whole or not at all. Raises
    Uncacheable or OSError (the caller only loses speed)."""
    if any(_SECRET_READ.search(name) for name in names):
        raise Uncacheable("interpolation read a variable named like a secret")
    ordered = sorted(names)
    body = orjson.dumps(
        {
            "format": FORMAT,
            "inputs": key,
            "env": ordered,
            "env_digest": env_digest(ordered, env),
            "desired": _encode(desired),
        }
    )
    _refuse_secrets(body, desired, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, refuse=OSError, what="cached Desired") as out:
        out.write(hashlib.sha256(body).hexdigest().encode("ascii") + b"\n" + body)


def _refuse_secrets(body: bytes, desired: model.Desired, env: Mapping[str, str]) -> None:
    s3 = [store for store in desired.stores.values() if isinstance(store, model.S3StoreSpec)]
    named = {variable for store in s3 for _, variable in store.credentials_env}
    for name, value in env.items():
        if value and (name in named or _SECRET_VALUE.search(name)) and orjson.dumps(value)[1:-1] in body:
            raise Uncacheable(f"the Desired holds the value of {name}")
    for store in s3:
        if "@" in (store.endpoint or "").partition("://")[2].split("/")[0]:
            raise Uncacheable(f"store {store.name}'s endpoint carries a user or password")


def _encode(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.StrEnum):
        if _ENUMS.get(type(value).__name__) is not type(value):
            raise Uncacheable(f"no plain form for {type(value).__name__}")
        return {"$e": type(value).__name__, "v": value.value}
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(name, str) for name in value):
            raise Uncacheable("a mapping with keys other than names")
        return {"$m": {name: _encode(item) for name, item in value.items()}}
    cls = type(value)
    if dataclasses.is_dataclass(value) and _CLASSES.get(cls.__name__) is cls:
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$c": cls.__name__, "f": fields}
    raise Uncacheable(f"no plain form for {cls.__name__}")


def _decode(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise _Corrupt
    if "$m" in value and len(value) == 1 and isinstance(value["$m"], dict):
        return {name: _decode(item) for name, item in value["$m"].items()}
    if "$e" in value and "v" in value:
        return _ENUMS[value["$e"]](value["v"])
    if "$c" in value and "f" in value and isinstance(value["f"], dict):
        return _CLASSES[value["$c"]](**{name: _decode(item) for name, item in value["f"].items()})
    raise _Corrupt
