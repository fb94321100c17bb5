"""pixel's files on this machine: one directory, chosen in one module."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from reconciler import paths

REPO = Path(__file__).resolve().parents[2]
PLACES = (
    paths.hash_cache_file,
    paths.valid_specs_file,
    paths.desired_cache_dir,
    paths.apply_history_dir,
    paths.dataset_cache_dir,
)


def test_cache_dir_prefers_pixel_cache_dir_then_xdg_then_home() -> None:
    assert paths.cache_dir({"PIXEL_CACHE_DIR": "/a/b", "XDG_CACHE_HOME": "/x"}) == Path("/a/b")
    assert paths.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/pixel")
    assert paths.cache_dir({}) == Path.home() / ".cache" / "pixel"


names = st.text(st.sampled_from("abc/"), min_size=1, max_size=8).map(lambda s: "/" + s)


@given(st.fixed_dictionaries({}, optional={"PIXEL_CACHE_DIR": names, "XDG_CACHE_HOME": names}))
def test_every_file_moves_with_the_cache_directory(env: dict[str, str]) -> None:
    root = paths.cache_dir(env)
    places = [place(env) for place in PLACES]
    assert all(place.parent == root for place in places)
    assert len(set(places)) == len(places)


def test_only_paths_reads_the_cache_variables() -> None:
    """A second module choosing the directory would let the hash cache and the loader's copies part ways."""
    readers = []
    for source in sorted((REPO / "reconciler").rglob("*.py")):
        if (source.name == "paths.py" and source.parent.name == "reconciler") or "dev" in source.parts:
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ("PIXEL_CACHE_DIR", "XDG_CACHE_HOME"):
                readers.append(f"{source.relative_to(REPO)}:{node.lineno}")
    assert readers == []
