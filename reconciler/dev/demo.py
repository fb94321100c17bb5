"""`make demo`: pixel against a real S3 server, from an empty bucket to a converged one.

Writes a deterministic staging drive into ./demo-data (reconciler.dev.demo_data),
starts a throwaway SeaweedFS server, creates the buckets the specs name, and runs
the real `pixel` console script with the repository's specs:

    pixel plan --detailed-exitcode     everything is new: exit 2
    pixel apply --auto-approve         upload it all
    pixel plan --detailed-exitcode     nothing left to do: exit 0

then the training-data walkthrough (reconciler.dev.world_demo: actors in every
sync state, datasets organised inside S3, manifests), the read side
(reconciler.dev.loader_demo: `pixel datasets`, `pixel cat`, `load_dataset`, ranks and DataLoader
workers, shuffle, offline reads with the server stopped for a moment), and `pixel serve`
for a moment, fetching one actor's training-data document over HTTP
(reconciler.dev.service_demo). Run it from the
repository root; the server is always stopped, whatever happens.

    python -m reconciler.dev.demo [--data DIR] [--specs DIR] [--skip-world]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reconciler.dev import demo_data
from reconciler.dev.final_demo import seed_training_ready
from reconciler.dev.seaweed import SeaweedError, SeaweedServer, sigterm_runs_cleanup

PIXEL = Path(sys.executable).with_name("pixel")
RULE = "=" * 100


# The specs declare the whole training-data world, but this act only writes the staging drive: what the
# walkthrough seeds later (actor 0042's images, the datasets' sources) is reported missing until then.
_FIRST_ACT = (
    "\nThis first act syncs the staging drive only. The specs also declare actor 0042's images and datasets\n"
    "organised from raw and vendor sources that nothing has written yet, so each plan of this act ends with\n"
    "`missing` findings, one per cause: expected here, and reported, never acted on."
)
FIRST_ACT_NOTE = _FIRST_ACT + " The training-data walkthrough below seeds them."
FIRST_ACT_NOTE_ALONE = _FIRST_ACT + " Run the demo without --skip-world to see them seeded."


class DemoFailed(Exception):
    """A step did not end as the demo expects; the message says which and how."""


def say(text: str = "") -> None:
    print(text, flush=True)


def banner(title: str) -> None:
    say(f"\n{RULE}\n{title}\n{RULE}")


def spec_buckets(specs: Path) -> list[str]:
    """Every bucket an S3 store in the specs names: each must exist before the first plan."""
    buckets: set[str] = set()
    for path in sorted(specs.glob("*.y*ml")):
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        stores = document.get("stores") if isinstance(document, dict) else None
        for store in (stores or {}).values():
            if isinstance(store, dict) and store.get("type") == "s3" and isinstance(store.get("bucket"), str):
                buckets.add(store["bucket"])
    return sorted(buckets)


def run_pixel(args: list[str], env: dict[str, str], expect: int, why: str, step: str) -> None:
    banner(f"{step}  {why}")
    say(f"$ pixel {shlex.join(args)}\n")
    began = time.monotonic()
    # Not captured: the plan and the progress go straight to the terminal, as they would for a user.
    code = subprocess.run([str(PIXEL), *args], env=env, check=False).returncode
    say(f"\n[exit {code} after {time.monotonic() - began:.1f} s; expected {expect}]")
    if code != expect:
        raise DemoFailed(f"`pixel {shlex.join(args)}` exited {code}, expected {expect} ({why})")


def run(data: Path, specs: Path, training_data: bool) -> None:
    if not PIXEL.is_file():
        raise DemoFailed(f"the pixel console script is not at {PIXEL}: run `make install` first")
    if not specs.is_dir():
        raise DemoFailed(f"no specs directory at {specs.resolve()}: run the demo from the repository root")
    root = data.resolve()
    began = time.monotonic()
    demo_data.generate(root)
    seed_training_ready(root)  # specs/final_dataset.yaml maps ai/training_ready/data: it must exist
    files = demo_data.build()
    banner("pixel demo")
    say(
        f"Staging drive: {len(files)} files, {sum(len(f.data) for f in files) / 2**20:.1f} MiB "
        f"under {root / 'gdrive'} (written in {time.monotonic() - began:.2f} s)"
    )
    with SeaweedServer() as server:
        buckets = spec_buckets(specs) or ["pixel-data"]
        for bucket in buckets:
            server.create_bucket(bucket)
        say(
            f"SeaweedFS S3 at {server.endpoint}, started in {server.startup_seconds or 0:.1f} s; "
            f"empty buckets: {', '.join(buckets)}"
        )
        extra = {"PIXEL_S3_ENDPOINT": server.endpoint, "PIXEL_DATA_ROOT": str(root)}
        env = server.child_env(extra)
        say("Environment for pixel: " + " ".join(f"{name}={value}" for name, value in sorted(extra.items())))
        say("  plus AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION for the throwaway server")

        # `--specs specs` is pixel's default: left out, the commands read as a user would type them.
        # -q: warnings and errors only on stderr; a plan prints in full, an apply only its closing line and summary.
        where = ["-q"] if specs == Path("specs") else ["-q", "--specs", str(specs)]
        plan = ["plan", *where, "--detailed-exitcode"]
        say(FIRST_ACT_NOTE if training_data else FIRST_ACT_NOTE_ALONE)
        run_pixel(plan, env, 2, "an empty bucket: every file is a change", "[1/3]")
        run_pixel(["apply", *where, "--auto-approve"], env, 0, "upload and verify it all", "[2/3]")
        run_pixel(plan, env, 0, "converged: the next plan is empty", "[3/3]")

        if training_data:
            # Imported here: the walkthrough is optional, and only this branch needs its dependencies.
            from reconciler.dev.world_demo import run_world_demo

            banner("The training-data world: actor images, datasets and manifests")
            from reconciler.dev.final_demo import run_final_demo
            from reconciler.dev.loader_demo import run_loader_demo
            from reconciler.dev.service_demo import run_service_demo

            try:
                run_world_demo(specs, root, env, server.client(), say)
                banner("The final training dataset: published, current, rebuilt when a source changes")
                run_final_demo(specs, root, env, say)
                banner("Training reads datasets by name: pixel datasets, pixel cat, load_dataset()")
                run_loader_demo(specs, env, say, halt=server.halt, resume=server.resume)
                banner("The training-data service: seed 004's API over the manifests just written")
                run_service_demo(specs, env, say)
            except RuntimeError as exc:
                raise DemoFailed(str(exc)) from exc
    banner(f"Demo complete in {time.monotonic() - began:.0f} s; the S3 server is stopped, {data} is kept.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.dev.demo", description="pixel against a real S3 server")
    parser.add_argument("--data", type=Path, default=Path("demo-data"), help="local staging root (default demo-data)")
    parser.add_argument("--specs", type=Path, default=Path("specs"), help="specs directory (default specs)")
    parser.add_argument("--skip-world", action="store_true", help="stop after the plan / apply / plan steps")
    options = parser.parse_args(argv)
    try:
        with sigterm_runs_cleanup():
            run(options.data, options.specs, training_data=not options.skip_world)
    except (DemoFailed, SeaweedError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted; the S3 server is stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
