"""Generated files rendered from observed reality: actor manifests, the dataset registry, the inventory.

The renderers are pure (entries in, bytes out) so the planner can compare
their output with the file on disk; `apply/manifest_writer.py` runs them at apply time.
"""
