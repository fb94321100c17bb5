"""Rendering a plan for a command: the format asked for, colour only where it can be seen and is wanted."""

from __future__ import annotations

import pytest

from reconciler import progress
from reconciler.choices import OutputFormat
from reconciler.commands.common import plan_workspace
from reconciler.commands.output import color_wanted, render_plan, render_preview
from reconciler.model import Plan
from reconciler.plan import serialize
from tests.unit.commands.conftest import World


def test_colour_only_on_a_terminal_and_never_under_no_color() -> None:
    assert color_wanted(True, {}) is True
    assert color_wanted(False, {}) is False
    assert color_wanted(True, {"NO_COLOR": ""}) is False  # set to anything, the empty string included


def test_each_format_is_its_renderer() -> None:
    plan = Plan((), (), spec_digest="c" * 64)
    assert serialize.loads(render_plan(plan, None, OutputFormat.JSON)).spec_digest == "c" * 64
    assert render_plan(plan, None, OutputFormat.MARKDOWN).startswith("###")
    assert "No changes" in render_plan(plan, None, OutputFormat.TEXT)


def test_quiet_shortens_only_the_text_preview(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.local("a.json", b"{}")
    ws, plan = plan_workspace(world.specs, 2)
    whole = render_plan(plan, ws.desired, OutputFormat.TEXT)
    assert "datasets/raw/a.json" in whole and render_preview(plan, ws.desired, OutputFormat.TEXT) == whole
    progress.configure(quiet=True)
    brief = render_preview(plan, ws.desired, OutputFormat.TEXT)
    # apply -q: no action listed, the closing line kept.
    assert "datasets/raw/a.json" not in brief and "Plan: 1 to upload, 0 to update, 0 to delete." in brief
    markdown = OutputFormat.MARKDOWN
    assert render_preview(plan, ws.desired, markdown) == render_plan(plan, ws.desired, markdown)
