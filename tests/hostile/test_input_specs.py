"""Hostile spec directories: alias bombs, huge files, globs that cannot match, nothing declared, flag order."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main
from tests.integration.pixelenv import PIXEL

VALID = """\
stores:
  s3: {type: s3, bucket: pixel-data}
  disk: {type: local, root: data}
mappings:
  - {name: raw, from: "disk:raw", to: "s3:raw/"}
"""


def _limited() -> None:
    # Were a guard to fail, the bomb must not take the machine with it: 1.5 GiB of address space.
    resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))


def validate_in_child(specs: Path) -> subprocess.CompletedProcess[str]:
    """`pixel validate` in a child held to 1.5 GiB and 60 s (the fix answers in well under a second). A child, not
    `pixel_in_process`: both limits are the process's, and a failed guard must cost that child, not pytest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NO_COLOR": "1"}
    return subprocess.run(
        [PIXEL, "validate", "--specs", str(specs)],
        capture_output=True, text=True, timeout=60, env=env, preexec_fn=_limited, check=False,
    )


def validate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_an_alias_bomb_is_refused_naming_the_file_and_the_limit(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    levels = ["l0: &l0 [" + ", ".join(["x"] * 9) + "]"]
    levels += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (specs / "bomb.yaml").write_text(VALID + "\n".join(levels) + "\n")
    done = validate_in_child(specs)
    assert done.returncode == 1, done.stderr
    assert "bomb.yaml" in done.stderr and "Traceback" not in done.stderr
    assert "YAML aliases expand to more than 100,000 nodes (the limit on alias expansion)" in done.stderr


def test_a_spec_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    big = specs / "big.yaml"
    with big.open("w") as out:
        out.write(VALID)
        out.write("# filler\n" * (50 * 1024 * 1024 // 9))
    size = big.stat().st_size
    done = validate_in_child(specs)
    assert done.returncode == 1, done.stderr
    assert (
        f"big.yaml: the file is {size:,} bytes, more than the limit on a spec file's size "
        "(5 MiB, 5,242,880 bytes)"
    ) in done.stderr, done.stderr


def test_a_spec_file_with_a_few_aliases_is_fine(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(
        "stores:\n  s3: {type: s3, bucket: pixel-data}\n  disk: {type: local, root: data}\n"
        "mappings:\n"
        + "".join(f'  - {{name: m{i}, from: "disk:m{i}", to: "s3:m{i}/", exclude: &x{i} ["*.tmp", "*.part"]}}\n'
                  for i in range(20))
    )
    assert validate("validate", "--specs", str(specs))[0] == 0


def test_invalid_globs_are_located_spec_errors(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(
        VALID.replace('to: "s3:raw/"}', 'to: "s3:raw/", include: ["[", "*.json"], exclude: ["{a,", "b}", "[]"]}')
    )
    code, out, err = validate("validate", "--specs", str(specs))
    assert code == 1, out
    file = specs / "specs.yaml"
    shown = os.path.relpath(file) if not os.path.relpath(file).startswith("..") else str(file)
    assert f'{shown}:5: mappings[0].include[0]: invalid glob "[": "[" opens a character class that is never closed' \
        in err, err
    assert 'mappings[0].exclude[0]: invalid glob "{a,": "{" opens an alternation that is never closed' in err
    assert 'mappings[0].exclude[1]: invalid glob "b}": "}" closes an alternation that was never opened' in err
    assert 'mappings[0].exclude[2]: invalid glob "[]": empty character class' in err
    assert "include[1]" not in err
    assert "4 problems in the specs" in err


def test_alternations_match_either_branch(tmp_path: Path) -> None:
    from reconciler.globs import matches

    assert matches("a/x.json", ("*.{json,jsonl}",), ())
    assert matches("a/x.jsonl", ("*.{json,jsonl}",), ())
    assert not matches("a/x.csv", ("*.{json,jsonl}",), ())
    assert matches("raw/2024/x", ("raw/{2023,2024}/**",), ())


def test_a_spec_directory_that_declares_nothing_is_an_error(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "empty.yaml").write_text("# everything still to come\n")
    (specs / "other.yaml").write_text("{}\n")
    code, out, err = validate("validate", "--specs", str(specs))
    assert code == 1, out
    assert f"{specs}: no stores or mappings declared in spec directory (read empty.yaml, other.yaml)" in err, err
    assert f"1 problem in the specs in {specs}/" in err


def test_global_flags_are_accepted_before_and_after_the_subcommand(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(VALID)
    for args in (
        ["--specs", str(specs), "validate"],
        ["validate", "--specs", str(specs)],
        ["--log-format", "json", "-q", "--specs", str(specs), "validate"],
        ["-v", "validate", "--specs", str(specs), "--log-format", "console"],
    ):
        code, out, err = validate(*args)
        assert code == 0, (args, out, err)
        assert f"Specs in {specs} are valid: 2 store(s), 1 mapping(s)." in out
    # After the subcommand wins: it is the nearer, more specific one.
    code, _, err = validate("--specs", str(tmp_path / "nowhere"), "validate", "--specs", str(specs))
    assert code == 0, err
    code, _, err = validate("--specs", str(tmp_path / "nowhere"), "validate")
    assert code == 1 and "spec directory does not exist" in err
