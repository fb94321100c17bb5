"""`pixel fmt`: one canonical layout, comments kept, idempotent, and never a change of meaning.

The laws are property-tested over specs written in many layouts: indentation 2 or 4, sequences indented or
flush, flow or block collections, every quoting style, comments at line ends and on lines of their own, blank
lines, trailing spaces, CRLF. For each: fmt(fmt(x)) == fmt(x), every comment survives, and the formatted spec
loads to the same Desired as the original.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.commands.fmt import FormatRefused, comments, format_text
from reconciler.model import Desired
from reconciler.spec import load_desired
from reconciler.spec.yamlnodes import parse_yaml

NAME = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
WORD = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,10}", fullmatch=True)
BUCKET = st.from_regex(r"[a-z0-9][a-z0-9-]{1,10}[a-z0-9]", fullmatch=True)
COMMENT = st.from_regex(r"[A-Za-z0-9 ,.:;!?()'\"{}\[\]#*-]{0,30}", fullmatch=True)


@st.composite
def spec_data(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid spec: S3 and local stores, mappings from one to the other under distinct prefixes."""
    s3_names = draw(st.lists(NAME, min_size=1, max_size=2, unique=True))
    local_names = draw(st.lists(NAME.filter(lambda n: n not in s3_names), min_size=1, max_size=2, unique=True))
    stores: dict[str, Any] = {}
    for name in s3_names:
        store: dict[str, Any] = {"type": "s3", "bucket": draw(BUCKET)}
        if draw(st.booleans()):
            store["region"] = draw(st.sampled_from(["us-east-1", "eu-west-3"]))
        if draw(st.booleans()):
            store["addressing_style"] = "path"
        stores[name] = store
    for name in local_names:
        stores[name] = {"type": "local", "root": "/data/" + draw(WORD)}
    mappings = []
    for index, name in enumerate(draw(st.lists(NAME, max_size=3, unique=True))):
        mapping: dict[str, Any] = {
            "name": name,
            "from": f"{draw(st.sampled_from(local_names))}:{draw(WORD)}",
            "to": f"{draw(st.sampled_from(s3_names))}:m{index}/{draw(WORD)}/",
        }
        if draw(st.booleans()):
            mapping["include"] = draw(st.lists(st.sampled_from(["**/*.json", "*.jsonl", "a/**", "x?.txt"]), min_size=1))
        for flag in ("prune", "protect"):
            if draw(st.booleans()):
                mapping[flag] = draw(st.booleans())
        if draw(st.booleans()):
            mapping["authority"] = draw(st.sampled_from(["local", "s3", "none"]))
        mappings.append(mapping)
    data: dict[str, Any] = {"stores": stores}
    if mappings:
        data["mappings"] = mappings
    return data


class Writer:
    """Renders data as YAML in a layout drawn at random, recording every comment it writes."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.step = draw(st.sampled_from([2, 4]))
        self.flush_sequences = draw(st.booleans())  # `key:\n- item` rather than `key:\n  - item`
        self.comments: list[str] = []
        self.lines: list[str] = []

    def comment(self) -> str:
        if self.draw(st.integers(0, 3)) != 0:
            return ""
        text = self.draw(COMMENT)
        self.comments.append(text.strip())
        return " " * self.draw(st.integers(1, 6)) + "# " + text

    def scalar(self, value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        assert isinstance(value, str)
        style = self.draw(st.sampled_from(["plain", "single", "double"]))
        plain_safe = re.fullmatch(r"[a-z/][a-z0-9_./:-]*", value) and value not in ("true", "false", "null")
        if style == "plain" and plain_safe:
            return value
        if style == "single" or style == "plain":
            return "'" + value.replace("'", "''") + "'"
        return json.dumps(value)

    def flow(self, value: object) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.flow(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flow(v) for v in value) + "]"
        return self.scalar(value)

    def emit(self, line: str) -> None:
        if self.draw(st.integers(0, 5)) == 0:
            self.lines.append(" " * self.draw(st.integers(0, 6)) + "# " + self.record(self.draw(COMMENT)))
        if self.draw(st.integers(0, 6)) == 0:
            self.lines.append("")
        self.lines.append(line + self.comment() + " " * self.draw(st.integers(0, 1)))

    def record(self, text: str) -> str:
        self.comments.append(text.strip())
        return text

    def block(self, value: object, indent: int) -> None:
        pad = " " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list) and item and self.draw(st.integers(0, 3)) != 0:
                    self.emit(f"{pad}{key}:")
                    inner = indent if isinstance(item, list) and self.flush_sequences else indent + self.step
                    self.block(item, inner)
                else:
                    self.emit(f"{pad}{key}: {self.flow(item)}")
        else:
            assert isinstance(value, list)
            for item in value:
                if isinstance(item, dict) and item and self.draw(st.booleans()):
                    start = len(self.lines)
                    self.block(item, indent + 2)
                    # The item's first key goes on the dash line: `- name: raw`, the others under it.
                    first = next(i for i in range(start, len(self.lines)) if self.lines[i].startswith(pad + "  ")
                                 and not self.lines[i].lstrip().startswith("#") and self.lines[i].strip())
                    self.lines[first] = pad + "- " + self.lines[first][indent + 2 :]
                else:
                    self.emit(f"{pad}- {self.flow(item)}")


@st.composite
def spec_texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    writer = Writer(draw)
    if draw(st.booleans()):
        writer.lines.append("# " + writer.record(draw(COMMENT)))
    writer.block(draw(spec_data()), 0)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(writer.lines) + newline * draw(st.integers(1, 3)), writer.comments


def _desired(tmp: Path, name: str, text: str) -> Desired:
    directory = tmp / name
    directory.mkdir(exist_ok=True)
    (directory / "spec.yaml").write_bytes(text.encode())
    desired = load_desired(directory, {})
    return dataclasses.replace(
        desired, mappings=tuple(dataclasses.replace(m, source_file="") for m in desired.mappings)
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec_texts())
def test_fmt_is_idempotent_keeps_comments_and_meaning(tmp_path_factory: pytest.TempPathFactory, drawn: Any) -> None:
    text, comments = drawn
    once = format_text(text)
    assert format_text(once) == once
    for comment in comments:
        assert comment in once, (comment, once)
    assert "\r" not in once and once.endswith("\n") and not once.endswith("\n\n")
    assert all(line == line.rstrip() for line in once.splitlines())
    tmp = tmp_path_factory.mktemp("fmt")
    original = _desired(tmp, "original", text)  # the layouts drawn are all valid specs
    assert _desired(tmp, "formatted", once) == original


def test_the_canonical_layout() -> None:
    messy = (
        "\ufeff# top\r\n"
        "stores:\r\n"
        "    data:   \r\n"
        "        type: s3     # where\r\n"
        "        bucket: 'data'\r\n"
        "mappings:\r\n"
        "- name: raw\r\n"
        "  from: disk:raw\r\n"
        "  include: [ '*.json',\r\n"
        "     '*.jsonl' ]\r\n"
        "\r\n\r\n"
    )
    assert format_text(messy) == (
        "# top\n"
        "stores:\n"
        "  data:\n"
        "    type: s3         # where\n"
        "    bucket: 'data'\n"
        "mappings:\n"
        "  - name: raw\n"
        "    from: disk:raw\n"
        "    include: ['*.json', '*.jsonl']\n"
    )


def test_the_repositorys_own_specs_are_formatted() -> None:
    specs = Path(__file__).resolve().parents[2] / "specs"
    for file in sorted(specs.glob("*.yaml")):
        text = file.read_text()
        assert format_text(text) == text, file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stores: [\n", "not YAML pixel can read"),
        ("a: 1\n---\nb: 2\n", "not YAML pixel can read"),
    ],
)
def test_text_pixel_cannot_read_is_refused(text: str, message: str) -> None:
    with pytest.raises(FormatRefused, match=message):
        format_text(text)


def _spec_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "spec.yaml").write_text(text)
    return tmp_path


def test_check_lists_the_files_that_would_change_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    messy = "stores:\n    data:\n        type: s3\n        bucket: data   \n"
    specs = _spec_dir(tmp_path, messy)
    (tmp_path / "tidy.yaml").write_text("mappings: []\n")
    (tmp_path / ".hidden.yaml").write_text("a:    1\n")  # never read by the loader: not formatted either
    result = CliRunner().invoke(main, ["fmt", "--check", "--specs", str(specs)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(tmp_path / "spec.yaml")]
    assert "1 spec file(s) not formatted" in result.stderr
    assert (tmp_path / "spec.yaml").read_text() == messy


def test_fmt_rewrites_in_place_keeping_the_mode_and_then_check_passes(tmp_path: Path) -> None:
    specs = _spec_dir(tmp_path, "stores:\n    data:\n        type: s3\n        bucket: data\n")
    os.chmod(tmp_path / "spec.yaml", 0o640)
    result = CliRunner().invoke(main, ["fmt", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "spec.yaml").read_text() == "stores:\n  data:\n    type: s3\n    bucket: data\n"
    assert stat.S_IMODE((tmp_path / "spec.yaml").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no temp file left behind
    again = CliRunner().invoke(main, ["fmt", "--check", "--specs", str(specs)])
    assert again.exit_code == 0 and again.stdout == ""


def test_a_file_that_cannot_be_formatted_is_named_left_alone_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("stores: [\n")
    (tmp_path / "good.yaml").write_text("stores:\n    data: {type: s3, bucket: data}\n")
    result = CliRunner().invoke(main, ["fmt", "--specs", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml: the file is not YAML pixel can read" in result.stderr
    assert (tmp_path / "bad.yaml").read_text() == "stores: [\n"
    assert (tmp_path / "good.yaml").read_text() == "stores:\n  data: {type: s3, bucket: data}\n"


def test_a_block_scalars_trailing_spaces_and_hash_lines_are_content_and_kept() -> None:
    """Tidying lines would change a block scalar (its trailing spaces, a `#` line inside it): fmt keeps them."""
    text = "notes: |\n  keep   \n    # not a comment\nstores:\n    data: {type: s3, bucket: abc}\n"
    formatted = format_text(text)
    assert "  keep   \n    # not a comment\n" in formatted
    assert "\n  data: {type: s3, bucket: abc}\n" in formatted
    assert format_text(formatted) == formatted


# Layouts the property test found ruamel.yaml mishandling: a comment line between flow items before a blank line
# (dropped), and a key with trailing blanks over a sequence at the key's own indentation (re-emitted as YAML that
# does not parse). Each must keep its data and every comment, and format the same way twice.
FOUND = [
    "mappings:\n  - name: d7to\n    authority: local\n# X\n\n  - {name: jnnvmhr_, protect: true}\n# G\n\n"
    "  - {name: u8of, protect: false} # \n",
    "mappings: \n# N5l\n- {name: 't', prune: false} # \n# 2nC\n- name: or6e9    # \n  to: \"x\"\n\n  include: \n"
    "  - 'a/**'\n  - '*.jsonl'\n\n  - '*.jsonl'     # \n\n  - 'a/**' \n\n  authority: \"local\"      # JtKk\n",
]


@pytest.mark.parametrize("text", FOUND)
def test_layouts_the_yaml_library_mishandles_keep_data_and_comments(text: str) -> None:
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert comments(formatted) == comments(text)
    assert parse_yaml(formatted).data == parse_yaml(text).data


def test_comments_are_told_from_hashes_inside_scalars() -> None:
    text = "a: 'x # not'  # yes # and\nb: |\n  # block content\n#top\nc: d#e\n"
    assert comments(text) == {"yes # and": 1, "top": 1}
