"""`pixel serve`: seed 004's actor training-data API and a status page, over pixel's own manifests and plans.

An edge, like the CLI: it reads through the same workspace, manifests and
status code, and every change it makes is a local edit followed by the same
targeted plan -> apply the CLI runs (`pixel apply --target actors/ID`).
"""
