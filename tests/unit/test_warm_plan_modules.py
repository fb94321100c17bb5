"""What `pixel plan` loads before it knows it will save a plan, print JSON or read an inventory report: none of
the modules only those need (each was a few ms of every warm no-op)."""

from __future__ import annotations

import json
import subprocess
import sys

# Only `plan -out`, `--format json` and `--observe inventory` need these.
LAZY = (
    "reconciler.commands.planfile",
    "reconciler.plan.savedfile",
    "reconciler.plan.serialize",
    "reconciler.observe.inventory",
)
PROBE = (
    "import json, sys\n"
    "import reconciler.cli, reconciler.commands.plan, reconciler.commands.output, reconciler.commands.common\n"
    "import reconciler.workflow, reconciler.observe.observer\n"
    f"print(json.dumps(sorted(m for m in {LAZY!r} if m in sys.modules)))\n"
)


def test_the_plan_command_loads_no_saved_plan_json_or_inventory_module() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []
