"""A spilled side is a dict of relative key -> Entry that iterates in `sorted()` order, and leaves no file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import Entry
from reconciler.scale.spill import Spill

# Any text a local name can be (lone surrogates are names that are not UTF-8), any code point order.
NAMES = st.text(st.characters(codec=None, exclude_categories=["Cs"]) | st.sampled_from(["\udcff", "/", "-", "!"]))
ENTRIES = st.lists(st.tuples(NAMES, st.integers(0, 2**40), st.none() | st.just("d41d8cd98f00b204e9800998ecf8427e")))


@settings(max_examples=100, deadline=None)
@given(rows=ENTRIES)
def test_a_spilled_side_is_the_dict_in_sorted_order(rows: list[tuple[str, int, str | None]]) -> None:
    entries = [Entry(rel, size, md5, size * 3, f"etag-{size}") for rel, size, md5 in rows]
    expected = {e.key: e for e in entries}  # a key listed twice keeps its later entry
    with tempfile.TemporaryDirectory() as tmp, Spill(Path(tmp)) as spill:
        side = spill.side("test")
        side.add_all(entries)
        assert list(side) == sorted(expected)
        assert list(side.items()) == sorted(expected.items())
        assert len(side) == len(expected)
        assert all(side[rel] == entry and rel in side for rel, entry in expected.items())
        if "\x00absent" not in expected:
            assert side.get("\x00absent") is None and "\x00absent" not in side


def test_the_spill_directory_is_removed_on_error(tmp_path: Path) -> None:
    try:
        with Spill(tmp_path) as spill:
            spill.side("x").add_all([Entry("a", 1, None)])
            raise RuntimeError("planning failed")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
