"""One way into the specs for the CLI, the service and the loader: a Desired or its located errors, no output."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.loader.api import desired_from
from reconciler.model import Desired
from reconciler.paths import valid_specs_file
from reconciler.service.state import Service, ServiceError
from reconciler.spec import SpecErrors, load_specs
from tests.unit.spec.spec_testing import STORES

BAD = STORES.replace("    bucket: pixel-data\n", "    bucket: pixel-data\n    regoin: x\n")
LOCATED = 'stores.yaml:5: stores.lake.regoin: unknown key "regoin"'


def spec_dir(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "specs"
    directory.mkdir()
    (directory / "stores.yaml").write_text(text, encoding="utf-8")
    return directory


def test_bad_specs_are_returned_located_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    loaded = load_specs(spec_dir(tmp_path, BAD), env)
    assert isinstance(loaded, SpecErrors)
    assert [LOCATED in message for message in loaded.messages] == [True]
    assert capsys.readouterr() == ("", "")
    assert not valid_specs_file(env).exists()  # a refused directory leaves nothing behind


def test_sound_specs_load_and_are_remembered_valid_in_the_envs_cache_directory(tmp_path: Path) -> None:
    env = {"PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    loaded = load_specs(spec_dir(tmp_path, STORES), env)
    assert isinstance(loaded, Desired)
    assert set(loaded.stores) == {"lake", "staging"}
    assert valid_specs_file(env).is_file()


def test_the_service_answers_the_located_errors_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXEL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ServiceError) as caught:
        Service(spec_dir(tmp_path, BAD)).open()
    assert caught.value.status == 503
    assert LOCATED in str(caught.value)
    assert capsys.readouterr() == ("", "")  # the service's stderr is its log, not the CLI's "Error:" lines


def test_the_loader_raises_the_same_errors_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXEL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SpecErrors) as caught:
        desired_from(spec_dir(tmp_path, BAD))
    assert [LOCATED in message for message in caught.value.messages] == [True]
    assert capsys.readouterr() == ("", "")
