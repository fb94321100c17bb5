"""Developer tooling: a throwaway SeaweedFS S3 server, deterministic demo data and the `make demo` script.

Nothing in the engine imports this package; tests, the demo and benchmarks do.
"""
