"""The spec documents as the loader reads them, the report their errors go to, and the stores they declare.

Shared by the loader (stores, mappings) and the builders of the other sections
(`world.py`, `final.py`), which all check references against the declared stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.keys import segment_problem
from reconciler.model import ObjectRef, S3StoreSpec, StoreSpec
from reconciler.spec.errors import SpecError, YamlPath, display_path, format_path
from reconciler.spec.validate import show
from reconciler.spec.yamlnodes import Position


@dataclass(slots=True)
class SpecDocument:
    """One spec file after interpolation, with the line of every YAML path in it."""

    file: Path
    index: int
    data: object
    positions: dict[YamlPath, Position]
    # Paths that already have an error: semantic checks skip items below them, so one
    # mistake is not reported again as a confusing consequence.
    broken: set[YamlPath] = field(default_factory=set)

    @property
    def display(self) -> str:
        return display_path(self.file)

    def position(self, path: YamlPath) -> Position | None:
        # A path may lead into a value that has no position of its own (a scalar's
        # characters, a missing key): the nearest enclosing key or item stands for it.
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return position
        return None

    def line(self, path: YamlPath) -> int | None:
        position = self.position(path)
        return None if position is None else position[0]

    def where(self, path: YamlPath) -> str:
        line = self.line(path)
        return self.display if line is None else f"{self.display}:{line}"

    def is_broken(self, path: YamlPath) -> bool:
        """Whether an error was reported at `path` or anywhere below it."""
        return any(bad[: len(path)] == path for bad in self.broken)

    def section(self, name: str) -> object:
        return self.data.get(name) if isinstance(self.data, dict) else None


class Report:
    """Collects errors in document order; identical ones (one cause seen by several schema keywords) collapse."""

    def __init__(self) -> None:
        self._errors: dict[tuple[str, int | None, str, str], tuple[tuple[int, int, int, int], SpecError]] = {}

    def __bool__(self) -> bool:
        return bool(self._errors)

    def add_file(self, file: Path, index: int, line: int | None, message: str) -> None:
        self._add(SpecError(file, line, "", message), (index, line or 0, 0))

    def add(self, doc: SpecDocument, path: YamlPath, message: str, position: Position | None = None) -> None:
        doc.broken.add(path)
        line, column = position or doc.position(path) or (0, 0)
        error = SpecError(doc.file, line or None, format_path(path), message)
        self._add(error, (doc.index, line, column))

    def _add(self, error: SpecError, where: tuple[int, int, int]) -> None:
        key = (str(error.file), error.line, error.path, error.message)
        # Report order breaks ties on one spot: schema errors, then the meaning checks.
        self._errors.setdefault(key, ((*where, len(self._errors)), error))

    def errors(self) -> list[SpecError]:
        return [error for _, error in sorted(self._errors.values(), key=lambda item: item[0])]


@dataclass(slots=True)
class DeclaredStore:
    """A declared store; `spec` is None when its body has errors, `kind` when even its type is unknown."""

    doc: SpecDocument
    path: YamlPath
    kind: str | None
    spec: StoreSpec | None
    identity: tuple[str, ...]  # what makes two S3 targets the same bucket


_ARTICLE = {"local": "a local", "s3": "an s3"}


def store_ref(
    doc: SpecDocument,
    where: YamlPath,
    value: str,
    want: str,
    stores: dict[str, DeclaredStore],
    report: Report,
    *,
    shape: str = '"store:path"',
    what: str = "path",
    kind_when_undefined: bool = False,
) -> tuple[str, str] | None:
    """(store, rest) of a "store:rest" value naming a `want` ("local"/"s3") store and a clean path, else reported.

    `kind_when_undefined`: an undefined store is reported as "naming an s3 store" rather than
    "naming a defined store" (the world sections, where the kind is what the reader must fix).
    """
    store_name, _, rest = value.partition(":")
    store = stores.get(store_name)
    naming = f"naming {_ARTICLE[want]} store"
    if store is None:
        expected = naming if kind_when_undefined else "naming a defined store"
        report.add(
            doc,
            where,
            f"expected {shape} {expected}, got {show(value)} (store {show(store_name)} is not defined)",
        )
        return None
    if store.kind is not None and store.kind != want:
        report.add(
            doc,
            where,
            f"expected {shape} {naming}, got {show(value)} (store {show(store_name)} is {_ARTICLE[store.kind]} store)",
        )
        return None
    problem = segment_problem(rest)
    if problem:
        report.add(doc, where, f"{what} {problem}, got {show(value)}")
        return None
    if isinstance(store.spec, S3StoreSpec):
        # As a prefix too: "s3:.pixel" would cover everything under .pixel/.
        inside = as_prefix(rest)
        own = next((p for p in store.spec.reserved_prefixes() if inside.startswith(p)), None)
        if own is not None or rest == store.spec.lock_key:
            space = own or store.spec.lock_key
            report.add(
                doc,
                where,
                f"{what} {show(value)} lies in pixel's own space {show(space)} of store {show(store_name)} "
                "(its lock, move scratch and upload records); choose another",
            )
            return None
    return store_name, rest


def section_ref(
    doc: SpecDocument, path: YamlPath, value: object, want: str, stores: dict[str, DeclaredStore], report: Report
) -> tuple[str, str] | None:
    """ "store:rest" naming a defined store of kind `want` and a clean relative path, else reported."""
    if not isinstance(value, str) or doc.is_broken(path):
        return None
    return store_ref(doc, path, value, want, stores, report, kind_when_undefined=True)


def file_ref(
    doc: SpecDocument, path: YamlPath, value: object, stores: dict[str, DeclaredStore], report: Report
) -> ObjectRef | None:
    ref = section_ref(doc, path, value, "local", stores, report)
    if ref is None:
        return None
    if ref[1] == "" or ref[1].endswith("/"):
        report.add(doc, path, f'expected "store:path" of a file, got {show(value)}')
        return None
    return ObjectRef(*ref)


def declared_once(doc: SpecDocument, name: str, seen: dict[str, str], report: Report) -> bool:
    """A section that may appear in one file only; later ones are reported."""
    if name in seen:
        report.add(doc, (name,), f"{name} is already defined at {seen[name]}")
        return False
    seen[name] = doc.where((name,))
    return True


def as_prefix(rest: str) -> str:
    return rest if rest == "" or rest.endswith("/") else rest + "/"


def declarations(
    doc: SpecDocument, section: str, what: str, seen: dict[str, str], report: Report
) -> Iterator[tuple[str, object, YamlPath]]:
    """(name, body, path) of each entry of a keyed section (`stores`, `tiers`) not declared before.

    `seen`, shared across documents, maps each name to where it was first declared; a repeat is reported.
    """
    body = doc.section(section)
    if not isinstance(body, dict):
        return
    for name, value in body.items():
        path: YamlPath = (section, name)
        if name in seen:
            report.add(doc, path, f'{what} "{name}" is already defined at {seen[name]}')
            continue
        seen[name] = doc.where(path)
        yield name, value, path
