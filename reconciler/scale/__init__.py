"""Planning in bounded memory (issue 29): the observation, the plan and the saved plan file spilled to disk.

The in-memory planner holds both sides of every mapping as dicts (about 660 B an object): at 10^8
objects that is more than most machines have. Here the same planner runs over sides kept in one
SQLite file (`spill.py`), read back in key order, so the first pass is a merge join of two sorted
streams (`plan.diff.plan_mapping`, unchanged); its actions go to the same file as they are decided,
the later passes look up only what they need there (`planner.py`), and the saved plan is written
from it a piece at a time (`planfile.py`). Every decision is still made by `reconciler.rules` and
the planner's own per-key functions: only where the objects live differs.

This is an edge (it writes files), not part of the pure planner in `reconciler.plan`.
"""
