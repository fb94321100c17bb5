"""The reusable GitHub Action (`action.yml`) run step by step as the runner would, without GitHub.

The composite's `run:` steps are executed with bash as GitHub runs them (`bash --noprofile --norc -eo pipefail`),
in a fresh clone of a repository that keeps specs, with the environment the Action gives each step: its
`env:` evaluated against the inputs, the `github` context and earlier steps' outputs (`$GITHUB_OUTPUT`), and
`if:` conditions evaluated the same way. `uses:` steps (setup-python, upload-artifact, the sticky comment) are
not run; the test checks whether they would run and with what, and emulates the artifact store. `gh` is a fake
on PATH that answers the apply job's questions (which PR, which run) and downloads that artifact.

pixel is pip-installed by the Action's own install step into a fresh virtualenv, from a copy of this
repository's files (a clone of the working tree), against a real SeaweedFS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PR_SHA = "a" * 40


# -- A small evaluator of GitHub's expression language, as much of it as action.yml uses -----------------------

_TOKEN = re.compile(
    r"\s*(?:('(?:[^']|'')*')"  # a string literal
    r"|(always\(\)|success\(\)|failure\(\))"  # a status function
    r"|([A-Za-z_][A-Za-z0-9_.-]*)"  # a context property (inputs.pip-args, steps.plan.outputs.exitcode)
    r"|(==|!=|&&|\|\||!|\(|\)))"
)


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def evaluate(expression: str, context: dict[str, Any], failed: bool) -> Any:
    """GitHub semantics where they matter here: `a || b` is the first truthy operand, a missing property is
    null, comparisons of strings are by value."""
    python: list[str] = []
    values: dict[str, Any] = {}
    pos = 0
    while pos < len(expression.rstrip()):
        match = _TOKEN.match(expression, pos)
        assert match, f"cannot read {expression[pos:]!r} in {expression!r}"
        literal, function, name, operator = match.groups()
        slot = f"v{len(values)}"
        if literal is not None:
            values[slot] = literal[1:-1].replace("''", "'")
            python.append(slot)
        elif function is not None:
            values[slot] = {"always()": True, "success()": not failed, "failure()": failed}[function]
            python.append(slot)
        elif name is not None:
            values[slot] = {"true": True, "false": False, "null": None}.get(name, _lookup(context, name))
            python.append(slot)
        else:
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(operator, operator))
        pos = match.end()
    return eval("".join(python), {"__builtins__": {}}, values)


def substitute(text: str, context: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = evaluate(match.group(1), context, failed=False)
        return "" if value is None else str(value)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


# -- The runner --------------------------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    ran: bool
    code: int = 0
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    stderr: str = ""


@dataclass
class ActionRun:
    steps: list[Step]
    outputs: dict[str, str]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def failed(self) -> bool:
        return any(s.ran and s.code != 0 for s in self.steps)


def run_action(
    workspace: Path, inputs: dict[str, str], github: dict[str, Any], env: dict[str, str], temp: Path
) -> ActionRun:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    context: dict[str, Any] = {"github": github, "steps": {}, "inputs": {}}
    for name, spec in action["inputs"].items():
        context["inputs"][name] = inputs.get(name, substitute(str(spec.get("default", "")), context))
    unknown = set(inputs) - set(action["inputs"])
    assert not unknown, f"inputs the Action does not declare: {unknown}"
    steps: list[Step] = []
    failed = False
    for index, spec in enumerate(action["runs"]["steps"]):
        name = spec.get("id") or spec.get("name") or f"step {index}"
        condition = str(spec.get("if", "success()"))
        condition = condition.strip().removeprefix("${{").removesuffix("}}")
        always = "always()" in condition
        if (failed and not always) or not evaluate(condition, context, failed):
            steps.append(Step(name, ran=False, uses=spec.get("uses")))
            continue
        if "uses" in spec:
            with_ = {k: substitute(str(v), context) for k, v in spec.get("with", {}).items()}
            steps.append(Step(name, ran=True, uses=spec["uses"], with_=with_))
            continue
        assert spec["shell"] == "bash"
        assert "${{" not in spec["run"], f"{name}: an expression inside a script is a script-injection risk"
        output_file = temp / f"output-{index}"
        output_file.write_text("")
        script = temp / f"step-{index}.sh"
        script.write_text(spec["run"])
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_ACTION_PATH": str(github["action_path"]),
            **{k: substitute(str(v), context) for k, v in spec.get("env", {}).items()},
        }
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace, env=step_env, capture_output=True, text=True, timeout=900,
        )
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        if "id" in spec:
            context["steps"][spec["id"]] = {"outputs": outputs, "outcome": "failure" if proc.returncode else "success"}
        steps.append(Step(name, True, proc.returncode, outputs=outputs, stderr=proc.stdout + proc.stderr))
        failed = failed or proc.returncode != 0
    outputs = {name: substitute(str(spec["value"]), context) for name, spec in action["outputs"].items()}
    return ActionRun(steps, outputs)


# -- The world: a repository of specs, a clone of pixel, a fresh virtualenv, a fake gh --------------------------

FAKE_GH = r"""#!/bin/bash
# gh as the apply job uses it: the PR a merge commit came from, its plan run, that run's artifact.
echo "gh $*" >> "$FAKE_GH_LOG"
case "$1 $2" in
  "api repos/"*) echo "$FAKE_PR_SHA" ;;
  "run list") echo "$FAKE_RUN_ID" ;;
  "run download")
    shift 2
    while [ $# -gt 0 ]; do
      case "$1" in --name) name=$2; shift 2 ;; --dir) dir=$2; shift 2 ;; *) shift ;; esac
    done
    [ -d "$FAKE_ARTIFACTS/$name" ] || { echo "no artifact $name" >&2; exit 1; }
    mkdir -p "$dir" && cp -r "$FAKE_ARTIFACTS/$name/." "$dir/" ;;
  *) echo "unexpected gh call: $*" >&2; exit 1 ;;
esac
"""


def _clone_of_pixel(target: Path) -> Path:
    """The repository's tracked and new (not ignored) files: what a clone of this working tree holds."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def _specs_repo(origin: Path, data: Path, endpoint: str, bucket: str) -> None:
    """Specs in git; the local store's files outside the checkout, where both jobs see the same files (a
    self-hosted runner's data directory). (Files in the checkout work too: apply re-hashes a file checked out
    again, tests/integration/test_saved_plans.py.)"""
    (origin / "specs").mkdir(parents=True)
    (data / "raw").mkdir(parents=True)
    for index in range(3):
        (data / "raw" / f"part-{index}.jsonl").write_text(f'{{"n": {index}}}\n')
    (origin / "specs" / "pixel.yaml").write_text(
        f"""stores:
  bucket:
    type: s3
    bucket: {bucket}
    endpoint: {endpoint}
    region: us-east-1
    addressing_style: path
    checksum: when_required
  runner:
    type: local
    root: ${{PIXEL_DATA_ROOT}}
mappings:
  - name: raw
    from: runner:raw
    to: bucket:raw/
    prune: true
"""
    )
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "specs")


def _venv_with_our_dependencies(venv: Path) -> None:
    """A fresh venv that sees the dev venv's site-packages (pip and pixel's dependencies) through a plain .pth
    line, as tests/cli/test_wheel.py makes one: the dev venv's own editable pixel (itself a .pth there) is not
    picked up, so the `pixel` the Action runs is the one its install step put in this venv."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True)
    (Path(where.stdout.strip()) / "pixel-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def test_the_action_plans_a_pull_request_and_applies_that_plan_on_merge(
    seaweed: Any, bucket: str, tmp_path: Path
) -> None:
    pixel_src = _clone_of_pixel(tmp_path / "pixel-action")
    origin = tmp_path / "origin"
    data = tmp_path / "runner-data"
    _specs_repo(origin, data, seaweed.endpoint, bucket)
    _venv_with_our_dependencies(tmp_path / "venv")
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "gh").write_text(FAKE_GH)
    (fake_bin / "gh").chmod(0o755)
    artifacts = tmp_path / "artifacts"
    env = {
        **seaweed.env(),
        "PATH": os.pathsep.join([str(tmp_path / "venv" / "bin"), str(fake_bin), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "PIXEL_CACHE_DIR": str(tmp_path / "cache"),
        "PIXEL_DATA_ROOT": str(data),
        "CI": "true",
        "NO_COLOR": "1",
        "FAKE_GH_LOG": str(tmp_path / "gh.log"),
        "FAKE_PR_SHA": PR_SHA,
        "FAKE_RUN_ID": "4242",
        "FAKE_ARTIFACTS": str(artifacts),
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    # Until the wheel ships schemas/ (issue 24, packaging), pixel runs from its source checkout: editable.
    # --no-deps: the Action's install step still pip-installs pixel itself; its dependencies are the dev venv's
    # (see _venv_with_our_dependencies), not downloaded and installed again by every run of the suite.
    inputs = {"pip-args": "--no-deps --editable"}
    github = {
        "action_path": str(pixel_src),
        "repository": "example/training-data",
        "token": "fake-token",
        "workflow_ref": "example/training-data/.github/workflows/pixel.yml@refs/heads/main",
        "sha": PR_SHA,
    }
    client = seaweed.client()

    def clone(name: str) -> Path:
        _git(tmp_path, "clone", "-q", str(origin), name)
        return tmp_path / name

    def runner_temp(name: str) -> Path:
        path = tmp_path / "runner-temp" / name
        path.mkdir(parents=True)
        return path

    def listed() -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))

    # A pull request whose specs are broken: the job fails, the reviewer still gets a comment, no plan is saved.
    broken = clone("pr-broken")
    spec = broken / "specs" / "pixel.yaml"
    spec.write_text(spec.read_text().replace("to: bucket:raw/", "to: nowhere:raw/"))
    temp = runner_temp("broken")
    pull_request = {"number": 7, "head": {"sha": PR_SHA}}
    pr_event = {**github, "event_name": "pull_request", "event": {"pull_request": pull_request}}
    run = run_action(broken, inputs, pr_event, {**env, "RUNNER_TEMP": str(temp)}, temp)
    assert run.step("mode").outputs["mode"] == "plan"
    assert run.step("install").code == 0, run.step("install").stderr
    # The pixel that ran is the one the install step put in the venv, from the Action's checkout.
    python = tmp_path / "venv" / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import reconciler; print(reconciler.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(pixel_src), where.stdout + where.stderr
    assert run.outputs["exitcode"] == "1", run.step("plan").stderr
    markdown = Path(run.outputs["markdown-file"]).read_text()
    assert markdown.strip() and '"nowhere" is not defined' in markdown
    assert not Path(run.outputs["plan-file"]).exists()
    assert not run.step("upload the plan").ran
    comment = run.step("comment the plan")
    assert comment.ran and comment.with_["path"] == run.outputs["markdown-file"]
    assert run.step("fail on a plan error").ran and run.failed
    assert listed() == []

    # The pull request as it is merged: the plan is the comment and the artifact; nothing is written to S3.
    temp = runner_temp("plan")
    run = run_action(clone("pr"), inputs, pr_event, {**env, "RUNNER_TEMP": str(temp)}, temp)
    assert run.outputs["exitcode"] == "2", run.step("plan").stderr
    assert not run.failed and not run.step("fail on a plan error").ran
    upload = run.step("upload the plan")
    assert upload.ran and upload.with_ == {
        "name": f"pixel-plan-{PR_SHA}", "path": run.outputs["plan-file"], "if-no-files-found": "error"
    }
    assert run.step("comment the plan").with_["header"] == "pixel-plan-specs"
    markdown = Path(run.outputs["markdown-file"]).read_text()
    assert "part-0.jsonl" in markdown and "3" in markdown
    saved = json.loads(Path(run.outputs["plan-file"]).read_text())
    assert saved["format_version"] == 2 and len(saved["actions"]) == 3
    assert listed() == []
    (artifacts / upload.with_["name"]).mkdir(parents=True)
    shutil.copy(upload.with_["path"], artifacts / upload.with_["name"] / "plan.json")

    # Meanwhile a file appears that the reviewed plan does not upload: the merge applies the plan, not the world.
    (data / "raw" / "late.jsonl").write_text("{}\n")
    temp = runner_temp("apply")
    push_event = {**github, "event_name": "push", "sha": "b" * 40, "event": {}}
    merged = clone("main")
    run = run_action(merged, inputs, push_event, {**env, "RUNNER_TEMP": str(temp)}, temp)
    assert run.step("mode").outputs["mode"] == "apply"
    assert run.step("fetch").code == 0, run.step("fetch").stderr
    assert run.outputs["exitcode"] == "0", run.step("apply").stderr
    assert not run.step("plan").ran and not run.step("upload the plan").ran
    assert run.step("upload the apply report").ran
    report = json.loads((temp / "pixel" / "apply-report.json").read_text())
    assert report["counts"] == {"done": 3, "failed": 0, "skipped": 0}, report
    assert listed() == [f"raw/part-{i}.jsonl" for i in range(3)]
    calls = (tmp_path / "gh.log").read_text()
    assert f"gh api repos/example/training-data/commits/{'b' * 40}/pulls" in calls
    assert f"--commit {PR_SHA} --workflow pixel.yml --event pull_request --status success" in calls
    assert f"gh run download 4242 --repo example/training-data --name pixel-plan-{PR_SHA}" in calls

    # A push with no reviewed plan (its plan run failed or never ran) applies nothing.
    env_no_run = {**env, "FAKE_RUN_ID": "", "RUNNER_TEMP": str(runner_temp("no-plan"))}
    client.delete_object(Bucket=bucket, Key="raw/part-0.jsonl")
    run = run_action(clone("main-2"), inputs, push_event, env_no_run, Path(env_no_run["RUNNER_TEMP"]))
    assert run.step("fetch").code == 1 and "no reviewed plan" in run.step("fetch").stderr
    assert not run.step("apply").ran and run.failed
    assert listed() == [f"raw/part-{i}.jsonl" for i in (1, 2)]
