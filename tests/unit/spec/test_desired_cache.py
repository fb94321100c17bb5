"""The cached Desired: equal to a fresh load, fresh whenever an input changed, ignored when damaged, no secret in it."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import Desired
from reconciler.paths import desired_cache_dir
from reconciler.spec import SpecErrors, desiredcache, load_desired, load_specs
from reconciler.spec import loader as spec_loader
from reconciler.spec.files import SpecFiles, read_spec_files
from tests.unit.final.world import SPEC as FINAL_WORLD
from tests.unit.manifests.world import SPECS as SEED_WORLD

REPO = Path(__file__).resolve().parents[3]

SPEC = """\
stores:
  lake:
    type: s3
    bucket: ${BUCKET:-pixel-data}
    endpoint: http://127.0.0.1:8333
    credentials_env: {access_key_id: LAKE_KEY_ID, secret_access_key: LAKE_SECRET}
  staging: {type: local, root: data}
mappings:
  - {name: m, from: "staging:raw", to: "lake:raw/", prune: true, include: ["*.jsonl"]}
"""


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, files: Mapping[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def cache_files(env: Mapping[str, str]) -> list[Path]:
    directory = desired_cache_dir(env)
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def loaded(spec_dir: Path, env: Mapping[str, str]) -> Desired:
    result = load_specs(spec_dir, env)
    assert isinstance(result, Desired), result
    return result


def test_the_example_world_seed_worlds_and_final_world_come_back_equal_from_the_cache(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache"), "PIXEL_DATA_ROOT": str(cwd / "demo")}
    worlds = {
        "example": shutil.copytree(REPO / "specs", cwd / "example"),
        "seed": write(cwd / "seed", {"world.yaml": SEED_WORLD}),
        "final": write(cwd / "final", {"final.yaml": FINAL_WORLD}),
    }
    fresh = {name: load_desired(directory, env) for name, directory in worlds.items()}
    for directory in worlds.values():
        loaded(directory, env)  # files each one
    assert len(cache_files(env)) == len(worlds)
    with monkeypatch.context() as patch:
        patch.setattr(spec_loader, "load_desired", None)  # a hit must not reach the loader
        for name, directory in worlds.items():
            assert loaded(directory, env) == fresh[name], name
    example = fresh["example"]
    assert example.final is not None and example.actor_layout is not None and example.datasets and example.tiers


def test_a_changed_spec_gives_a_fresh_desired(cwd: Path) -> None:
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    first = loaded(specs, env)
    assert loaded(specs, env) == first
    (specs / "s.yaml").write_text(SPEC.replace("prune: true", "prune: false"), encoding="utf-8")
    second = loaded(specs, env)
    assert first.mappings[0].prune and not second.mappings[0].prune
    # An edit that keeps the file's size and its mtime.
    stat = (specs / "s.yaml").stat()
    (specs / "s.yaml").write_text(SPEC.replace("prune: true", "prune: false").replace("*.jsonl", "*.jsonx"))
    os.utime(specs / "s.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert loaded(specs, env).mappings[0].include == ("*.jsonx",)


edits = st.lists(
    st.tuples(
        st.sampled_from(["s.yaml", "extra.yml", ".hidden.yaml", "notes.txt"]),
        st.sampled_from(["raw", "cooked", "raw/deeper", "x y"]),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits)
def test_after_any_edits_the_cache_answers_what_a_cold_load_answers(
    cwd: Path, edits: list[tuple[str, str]]
) -> None:
    """Files written, added and edited one after another, a run after each edit: the warm answer is always
    the one the loader gives for the files as they are now (hidden and non-YAML files included)."""
    specs = cwd / "specs"
    shutil.rmtree(specs, ignore_errors=True)
    write(specs, {"s.yaml": SPEC})
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    for name, path in edits:
        text = SPEC if name == "s.yaml" else f"mappings:\n  - {{name: e, from: 'staging:{path}', to: 'lake:e/'}}\n"
        (specs / name).write_text(text.replace("staging:raw", f"staging:{path}"), encoding="utf-8")
        warm = load_specs(specs, env)
        fresh: Desired | SpecErrors
        try:
            fresh = load_desired(specs, env)
        except SpecErrors as exc:
            fresh = exc
        assert type(warm) is type(fresh)
        if isinstance(fresh, Desired):
            assert warm == fresh
            assert load_specs(specs, env) == fresh  # and the hit after it


def test_a_changed_variable_used_by_interpolation_gives_a_fresh_desired(cwd: Path) -> None:
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    base = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    assert loaded(specs, base).stores["lake"].bucket == "pixel-data"  # type: ignore[union-attr]
    assert loaded(specs, {**base, "BUCKET": "other"}).stores["lake"].bucket == "other"  # type: ignore[union-attr]
    assert loaded(specs, {**base, "BUCKET": ""}).stores["lake"].bucket == "pixel-data"  # type: ignore[union-attr]
    assert loaded(specs, {**base, "UNRELATED": "1"}).stores["lake"].bucket == "pixel-data"  # type: ignore[union-attr]


@given(value=st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_the_variable_holds_the_answer_is_the_loaders(cwd: Path, value: str | None) -> None:
    specs = write(cwd / "specs", {"s.yaml": SPEC.replace("type: s3\n", "type: s3\n    profile: p-${PROFILE:-x}\n")})
    base = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    env = base if value is None else {**base, "PROFILE": value}
    loaded(specs, {**base, "PROFILE": "warm"})
    assert loaded(specs, env) == load_desired(specs, env)
    assert loaded(specs, env).stores["lake"].profile == "p-" + (value or "x")  # type: ignore[union-attr]


def test_a_corrupt_or_truncated_cache_file_is_ignored_and_written_again(cwd: Path) -> None:
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    fresh = loaded(specs, env)
    (file,) = cache_files(env)
    good = file.read_bytes()
    header, _, body = good.partition(b"\n")
    damaged = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "not json": b"{not json",
        "a flipped byte": header + b"\n" + body.replace(b"pixel-data", b"pixel-dat4"),
        "signed, of another class": _signed(body.replace(b'"$c":"S3StoreSpec"', b'"$c":"Plan"')),
        "an unknown field, signed": _signed(body.replace(b'"bucket":', b'"bukket":')),
        "another format": _signed(body.replace(b'"format":1', b'"format":99')),
    }
    for why, data in damaged.items():
        file.write_bytes(data)
        assert loaded(specs, env) == fresh, why
        assert file.read_bytes() != data, f"{why}: the file was not written again"
    assert desiredcache.cached(file, "0" * 64, env) is None  # filed under other inputs


def _signed(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_no_damaged_file_is_ever_trusted(cwd: Path, cut: int, flip: int, bit: int) -> None:
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    fresh = loaded(specs, env)
    (file,) = cache_files(env)
    good = file.read_bytes()
    data = bytearray(good[: cut % (len(good) + 1)])
    if data:
        data[flip % len(data)] ^= 1 << bit
    file.write_bytes(bytes(data))
    key = desiredcache.inputs_digest(_read(specs))
    assert key is not None
    hit = desiredcache.cached(file, key, env)
    assert hit is None or (bytes(data) == good and hit == fresh)


def _read(specs: Path) -> SpecFiles:
    read = read_spec_files(specs)
    assert read is not None
    return read


def test_a_spec_error_still_comes_from_the_loader_after_a_warm_run(cwd: Path) -> None:
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    loaded(specs, env)
    (specs / "s.yaml").write_text(SPEC.replace("prune: true", "prune: yes-please"), encoding="utf-8")
    result = load_specs(specs, env)
    assert isinstance(result, SpecErrors)
    expected = "s.yaml:9: mappings[0].prune: expected boolean"
    assert any(expected in message for message in result.messages), result.messages


def test_no_secret_is_written_to_the_cache(cwd: Path) -> None:
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache"), "LAKE_SECRET": "s3cr3t-value-123", "API_TOKEN": "tok-4567890"}
    # A variable named like a secret, interpolated: nothing written.
    by_name = write(cwd / "a", {"s.yaml": SPEC.replace("${BUCKET:-pixel-data}", "${API_TOKEN}")})
    assert loaded(by_name, env).stores["lake"].bucket == "tok-4567890"  # type: ignore[union-attr]
    # The value of a variable a store reads its keys from, under an innocent name: nothing written either.
    by_value = write(cwd / "b", {"s.yaml": SPEC.replace("${BUCKET:-pixel-data}", "${BUCKET}")})
    assert loaded(by_value, {**env, "BUCKET": "s3cr3t-value-123"}).stores["lake"].bucket == "s3cr3t-value-123"  # type: ignore[union-attr]
    # A user and password in an endpoint.
    userinfo = write(cwd / "c", {"s.yaml": SPEC.replace("http://127.0.0.1", "http://me:pw0rd@127.0.0.1")})
    loaded(userinfo, env)
    assert cache_files(env) == []
    # Without them the cache is written, and names the credential variables without their values.
    plain = write(cwd / "d", {"s.yaml": SPEC})
    loaded(plain, env)
    (file,) = cache_files(env)
    text = file.read_bytes()
    assert b"LAKE_SECRET" in text
    assert b"s3cr3t" not in text and b"tok-45" not in text and b"pw0rd" not in text


def test_without_pixels_own_source_nothing_is_cached_and_the_specs_still_load(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desiredcache, "_PACKAGE", cwd / "no-such-install")
    specs = write(cwd / "specs", {"s.yaml": SPEC})
    env = {"PIXEL_CACHE_DIR": str(cwd / "cache")}
    assert loaded(specs, env) == load_desired(specs, env)
    assert cache_files(env) == []
