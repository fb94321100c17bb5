"""One reader of the loader benchmark, run as its own process: prints {"records", "seconds", "first_s", "cpu_s", ...}.

    python bench/loader_read.py TOOL ENDPOINT BUCKET TARGET [--specs DIR --cache DIR --name NAME --rank R --world N]

TARGET is an object key, or a prefix ending in "/" (every object under it, in key order).
A standalone script: the s3fs peer runs it with the peers' own virtualenv
(bench/.work/peers-venv), where reconciler is not installed; so every tool's
imports are inside its function. The clock starts after the imports, before the
first request, and first_s is the time to the first decoded record.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 1024 * 1024


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}, region_name="us-east-1")
    )


def _keys(client: Any, bucket: str, target: str) -> list[str]:
    if not target.endswith("/"):
        return [target]
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=target):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def naive(endpoint: str, bucket: str, target: str, _: argparse.Namespace) -> Iterator[int]:
    """What a training script does first: get_object, iter_lines, json.loads."""
    client = _client(endpoint)
    for key in _keys(client, bucket, target):
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for line in body.iter_lines():
            if line:
                record = json.loads(line)
                yield len(record)


def naive_orjson(endpoint: str, bucket: str, target: str, _: argparse.Namespace) -> Iterator[int]:
    """The parse-bound ceiling on one core: 1 MiB chunks split by hand, orjson."""
    import orjson

    client = _client(endpoint)
    for key in _keys(client, bucket, target):
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        rest = b""
        for chunk in body.iter_chunks(CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line:
                    yield len(orjson.loads(line))
        if rest.strip():
            yield len(orjson.loads(rest))


def s3fs_buffered(endpoint: str, bucket: str, target: str, _: argparse.Namespace) -> Iterator[int]:
    """s3fs used the fast way: its file behind an 8 MiB io.BufferedReader, lines parsed with orjson."""
    import orjson
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
    paths = sorted(fs.find(f"{bucket}/{target}")) if target.endswith("/") else [f"{bucket}/{target}"]
    for path in paths:
        with fs.open(path, "rb") as raw:
            for line in io.BufferedReader(raw, 8 * CHUNK):
                if line.strip():
                    yield len(orjson.loads(line))


def pixel(endpoint: str, bucket: str, target: str, options: argparse.Namespace) -> Iterator[int]:
    """pixel's loader by name through the specs, with the verified cache in options.cache."""
    from reconciler.loader import load_dataset

    ds = load_dataset(options.name, options.specs, cache_dir=options.cache, cache_limit=None, rank=options.rank,
                      world_size=options.world, partition="pad")
    for record in ds:
        yield len(record)


# Imported before the clock starts: time to first record is the reading, not the interpreter's start-up.
IMPORTS = {
    "naive": ["boto3"],
    "naive_orjson": ["boto3", "orjson"],
    "s3fs_buffered": ["orjson", "s3fs"],  # boto3 is not in the peers' virtualenv
    "pixel": ["boto3", "reconciler.loader", "reconciler.spec", "reconciler.stores.s3"],
}

TOOLS: dict[str, Callable[[str, str, str, argparse.Namespace], Iterator[int]]] = {
    "naive": naive,
    "naive_orjson": naive_orjson,
    "s3fs_buffered": s3fs_buffered,
    "pixel": pixel,
}


def wait_for_all(directory: str, rank: int, world: int) -> None:
    """Ranks started together still finish importing at different times (they share the cores): each starts
    its clock only once every rank is ready, so the aggregate's wall time is reading, not other ranks' imports."""
    import os

    with open(os.path.join(directory, f"ready-{rank}"), "w"):
        pass
    while len([n for n in os.listdir(directory) if n.startswith("ready-")]) < world:
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    parser.add_argument("target")
    parser.add_argument("--specs")
    parser.add_argument("--cache")
    parser.add_argument("--name")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world", type=int, default=1)
    parser.add_argument("--barrier", help="a directory: start only once --world readers are ready in it")
    options = parser.parse_args()
    import importlib

    for module in IMPORTS[options.tool]:
        importlib.import_module(module)
    if options.barrier:
        wait_for_all(options.barrier, options.rank, options.world)
    reader = TOOLS[options.tool](options.endpoint, options.bucket, options.target, options)
    began = time.time()  # wall clock: ranks run as separate processes, their spans are compared across them
    start = time.perf_counter()
    cpu = time.process_time()  # every thread of this process: the reader, its helpers
    first = None
    records = 0
    for _ in reader:
        if first is None:
            first = time.perf_counter() - start
        records += 1
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    json.dump({"records": records, "seconds": seconds, "first_s": first or seconds, "cpu_s": cpu, "began": began,
               "ended": began + seconds}, sys.stdout)


if __name__ == "__main__":
    main()
