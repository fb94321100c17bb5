"""Bad specs through the real CLI: `validate` and `plan` both exit 1 with one located message per
problem on stderr, and touch no store.

The S3 store's endpoint is a loopback port nothing listens on: a command that tried to reach it would
fail with a connection error instead of the spec message (see the last test). The local store's root
and the hash cache directory do not exist and must still not exist afterwards.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main

DEAD_ENDPOINT = "http://127.0.0.1:9"  # the discard port: connection refused

STORES = f"""\
stores:
  lake:
    type: s3
    bucket: pixel-data
    endpoint: {DEAD_ENDPOINT}
    region: us-east-1
    addressing_style: path
  staging:
    type: local
    root: ../local-root
"""

GOOD_MAPPING = """\
mappings:
  - name: raw
    from: staging:raw
    to: lake:raw/
"""

# (layout.yaml, the one message it gets): the message is file:line: yaml.path: what was expected.
CASES = {
    "unknown key": (
        GOOD_MAPPING + "    pruen: true\n",
        'specs/layout.yaml:5: mappings[0].pruen: unknown key "pruen" (expected one of: authority, exclude, from, '
        "include, keep_local, min_size, name, protect, prune, prune_local, release_local, to)",
    ),
    "wrong type": (
        GOOD_MAPPING + "    prune: yes\n",
        'specs/layout.yaml:5: mappings[0].prune: expected boolean, got string "yes"',
    ),
    "undefined store": (
        GOOD_MAPPING.replace("lake:raw/", "nowhere:raw/"),
        'specs/layout.yaml:4: mappings[0].to: expected "store:prefix" naming a defined store, got "nowhere:raw/" '
        '(store "nowhere" is not defined)',
    ),
    "bad yaml syntax": (
        GOOD_MAPPING.replace("    to:", "   to:"),
        "specs/layout.yaml:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection at line 2)",
    ),
    "dotdot in a prefix": (
        GOOD_MAPPING.replace("lake:raw/", "lake:raw/../secrets/"),
        'specs/layout.yaml:4: mappings[0].to: prefix must not contain ".." segments, got "lake:raw/../secrets/"',
    ),
    "dotdot in a path": (
        GOOD_MAPPING.replace("staging:raw", "staging:raw/../../etc"),
        'specs/layout.yaml:3: mappings[0].from: path must not contain ".." segments, got "staging:raw/../../etc"',
    ),
    "unset variable without default": (
        GOOD_MAPPING.replace("staging:raw", "staging:${PIXEL_TEST_UNSET_DIR}"),
        'specs/layout.yaml:3: mappings[0].from: environment variable "PIXEL_TEST_UNSET_DIR" is not set '
        "(write ${PIXEL_TEST_UNSET_DIR:-default} to give a default)",
    ),
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the cwd, so messages name `specs/<file>` as a user running pixel there sees them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "stores.yaml").write_text(STORES)
    return tmp_path


def invoke(workdir: Path, *args: str) -> tuple[int, str, str]:
    env = {
        # Credentials present, so a command that went on to S3 would get as far as connecting.
        "AWS_ACCESS_KEY_ID": "pixel-test-key",
        "AWS_SECRET_ACCESS_KEY": "pixel-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PIXEL_CACHE_DIR": str(workdir / "cache"),
        "PIXEL_TEST_UNSET_DIR": None,
        "NO_COLOR": "1",
    }
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_untouched(workdir: Path) -> None:
    assert not (workdir / "local-root").exists()
    assert not (workdir / "cache").exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["specs"]


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_spec_is_one_message_exit_1_and_nothing_touched(workdir: Path, case: str, command: str) -> None:
    layout, message = CASES[case]
    (workdir / "specs" / "layout.yaml").write_text(layout)

    code, out, err = invoke(workdir, command, "--specs", "specs")

    assert code == 1
    assert out == ""
    assert err == f"Error: {message}\nError: 1 problem in the specs in specs/; nothing was touched\n"
    assert_untouched(workdir)


def test_every_problem_is_reported_before_anything_is_touched(workdir: Path) -> None:
    (workdir / "specs" / "layout.yaml").write_text(
        textwrap.dedent(
            """\
            mappings:
              - name: raw
                from: staging:${PIXEL_TEST_UNSET_DIR}
                to: nowhere:raw/
                prune: yes
            """
        )
    )
    for command in ("validate", "plan"):
        code, out, err = invoke(workdir, command, "--specs", "specs")
        assert code == 1 and out == ""
        assert err.splitlines() == [
            'Error: specs/layout.yaml:3: mappings[0].from: environment variable "PIXEL_TEST_UNSET_DIR" is not set '
            "(write ${PIXEL_TEST_UNSET_DIR:-default} to give a default)",
            'Error: specs/layout.yaml:4: mappings[0].to: expected "store:prefix" naming a defined store, '
            'got "nowhere:raw/" (store "nowhere" is not defined)',
            'Error: specs/layout.yaml:5: mappings[0].prune: expected boolean, got string "yes"',
            "Error: 3 problems in the specs in specs/; nothing was touched",
        ]
    assert_untouched(workdir)


@pytest.mark.usefixtures("retries_on_a_clock_that_does_not_wait")
def test_the_same_specs_fixed_do_reach_for_the_store(workdir: Path) -> None:
    """The control: with valid specs, validate passes and plan fails on the dead endpoint, differently."""
    (workdir / "specs" / "layout.yaml").write_text(GOOD_MAPPING)

    assert invoke(workdir, "validate", "--specs", "specs")[:2] == (
        0,
        "Specs in specs are valid: 2 store(s), 1 mapping(s).\n",
    )
    # The local side present: a missing directory is said before any request, so the store is what fails.
    (workdir / "local-root" / "raw").mkdir(parents=True)
    code, out, err = invoke(workdir, "plan", "--specs", "specs")
    assert code == 1 and out == ""
    assert err.splitlines()[-1].startswith('Error: store "lake": reach bucket "pixel-data"'), err
    assert "EndpointConnectionError" in err and DEAD_ENDPOINT in err
