"""YAML to plain data, remembering the line of every mapping key and sequence item.

PyYAML's composer gives nodes with marks; we build the Python values ourselves so that
each value's YAML path can be mapped back to a line for error messages, and so that
duplicate keys, which PyYAML silently lets the last one win, become errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from reconciler.spec.errors import YamlPath

# (line, column), both 1-based: the line is shown, the column orders errors on one line.
Position = tuple[int, int]

# Nodes built again through an alias (or a `<<` merge) beyond their first time. Nine levels of
# `&a [*a x9]` are 387 million nodes from 200 bytes of text; a real spec repeats a few hundred.
MAX_ALIAS_NODES = 100_000

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_NULL = _TAG + "null"
_BOOL = _TAG + "bool"
_INT = _TAG + "int"
_FLOAT = _TAG + "float"
_SEQ = _TAG + "seq"
_MAP = _TAG + "map"
_MERGE = _TAG + "merge"

_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


class _CoreSchemaComposer(Reader, Scanner, Parser, Composer, BaseResolver):
    """Composes nodes, resolving plain scalars by the YAML 1.2 core schema.

    SafeLoader follows YAML 1.1, where `yes`, `on` and `no` are booleans, `12:30` is
    an integer and `2024-01-01` a date: in a spec that turns a slip into a different
    value instead of an error.
    """

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)


_CoreSchemaComposer.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_CoreSchemaComposer.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# Registered before float: the first matching resolver wins and "1" must stay an int.
_CoreSchemaComposer.add_implicit_resolver(_INT, re.compile(f"^(?:{_INT_RE.pattern})$"), list("-+0123456789"))
_CoreSchemaComposer.add_implicit_resolver(_FLOAT, re.compile(f"^(?:{_FLOAT_RE.pattern})$"), list("-+0123456789."))
_CoreSchemaComposer.add_implicit_resolver(_MERGE, re.compile(r"^(?:<<)$"), ["<"])


class YamlSyntaxError(Exception):
    """The text is not YAML at all; `line` is 1-based when the parser knows it."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class YamlProblem:
    path: YamlPath
    position: Position
    message: str


@dataclass(slots=True)
class ParsedYaml:
    """Plain data (dict, list, str, int, float, bool, None) plus where each part came from."""

    data: object
    positions: dict[YamlPath, Position] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document; an empty document is an empty mapping.

    Raises YamlSyntaxError when the text cannot be parsed; problems that still leave
    usable data (duplicate keys, unsupported tags) are returned in `problems`.
    """
    composer: _CoreSchemaComposer | None = None
    try:
        # The reader checks for non-printable characters as soon as it is built.
        composer = _CoreSchemaComposer(text)
        root = composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlSyntaxError(line, f"invalid YAML: {exc.reason} (character U+{character:04X})") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(None, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlSyntaxError(None, "invalid YAML: nested too deeply") from None
    finally:
        if composer is not None:
            composer.dispose()
    if root is None:
        return ParsedYaml(data={}, positions={(): (1, 1)})
    builder = _Builder()
    builder.positions[()] = _position(root)
    try:
        data = builder.build(root, ())
    except _AliasBomb as exc:
        raise YamlSyntaxError(
            exc.line,
            f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} nodes (the limit on alias expansion); "
            "write the repeated part out, or split it over fewer aliases",
        ) from None
    return ParsedYaml(data={} if data is None else data, positions=builder.positions, problems=builder.problems)


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context or 'cannot parse'}"
    if exc.problem and exc.context:
        context = exc.context
        if exc.context_mark is not None and exc.context_mark.line != getattr(mark, "line", None):
            context += f" at line {exc.context_mark.line + 1}"
        message += f" ({context})"
    return YamlSyntaxError(None if mark is None else mark.line + 1, message)


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _AliasBomb(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Builder:
    def __init__(self) -> None:
        self.positions: dict[YamlPath, Position] = {}
        self.problems: list[YamlProblem] = []
        # Aliases can point at an enclosing node; following them would never end.
        self._open: set[int] = set()
        # An alias is the same node object again: each build of a node seen before is an expansion.
        self._built: set[int] = set()
        self._expanded = 0

    def _problem(self, path: YamlPath, node: Node, message: str) -> None:
        self.problems.append(YamlProblem(path, _position(node), message))

    def build(self, node: Node, path: YamlPath) -> object:
        if id(node) in self._built:
            self._expanded += 1
            if self._expanded > MAX_ALIAS_NODES:
                raise _AliasBomb(_position(node)[0])
        else:
            self._built.add(id(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._open:
            self._problem(path, node, "an alias refers to the node that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._open.discard(id(node))
        self._problem(path, node, f"unsupported YAML node {_short_tag(node.tag)}")
        return None

    def _sequence(self, node: SequenceNode, path: YamlPath) -> list[object] | None:
        if node.tag != _SEQ:
            self._problem(path, node, f"unsupported YAML tag {_short_tag(node.tag)}")
            return None
        items: list[object] = []
        for index, child in enumerate(node.value):
            self.positions[(*path, index)] = _position(child)
            items.append(self.build(child, (*path, index)))
        return items

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, object] | None:
        if node.tag != _MAP:
            self._problem(path, node, f"unsupported YAML tag {_short_tag(node.tag)}")
            return None
        # Merged (`<<: *anchor`) keys first, so positions of the mapping's own keys win.
        merged: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node, path):
                    built = self.build(source, path)
                    if isinstance(built, dict):
                        for key, value in built.items():
                            merged.setdefault(key, value)
        own: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(path, key_node, "mapping keys must be plain strings")
                continue
            # The key's text, not its resolved value: a store named `2024` or `on` is a name.
            key = key_node.value
            position = _position(key_node)
            if key in first_line:
                self.problems.append(
                    YamlProblem((*path, key), position, f'duplicate key "{key}" (first at line {first_line[key]})')
                )
                continue
            first_line[key] = position[0]
            self.positions[(*path, key)] = position
            own[key] = self.build(value_node, (*path, key))
        return {**merged, **own}

    def _merge_sources(self, node: Node, path: YamlPath) -> list[Node]:
        if isinstance(node, MappingNode):
            return [node]
        if isinstance(node, SequenceNode) and all(isinstance(item, MappingNode) for item in node.value):
            return list(node.value)
        self._problem(path, node, 'a "<<" merge needs a mapping or a list of mappings')
        return []

    def _scalar(self, node: ScalarNode, path: YamlPath) -> object:
        text = node.value
        tag = node.tag
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if tag == _INT and _INT_RE.fullmatch(text):
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0x"):
                return int(text[2:], 16)
            return int(text, 10)
        if tag == _FLOAT and _FLOAT_RE.fullmatch(text):
            lowered = text.lower()
            if lowered.endswith(".inf"):
                return float("-inf") if lowered.startswith("-") else float("inf")
            if lowered == ".nan":
                return float("nan")
            return float(text)
        if tag in (_BOOL, _INT, _FLOAT):
            self._problem(path, node, f"cannot read {text!r} as {_short_tag(tag)}")
        else:
            self._problem(path, node, f"unsupported YAML tag {_short_tag(tag)}")
        return None
