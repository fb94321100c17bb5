"""Big uploads and downloads: awscrt's native S3 client against pixel's direct path, on one SeaweedFS, alternated.

awscrt (installed through botocore[crt]) splits a PutObject of a file into parts and sends them from C
threads, checksums and all, outside the GIL: what s3transfer's CRT mode and Mountpoint build on. This
measures whether it would upload pixel's big files faster than pixel's own multipart on the direct path
(stores/s3: parts read into reused buffers, hashed and sent from Python threads), and probes whether it
keeps the guard pixel needs on every write: a conditional complete (If-None-Match: *).

    python -m bench.crt_upload [--files 8] [--mib 64] [--rounds 3]   -> a table, and JSON with --json

Three contenders per round, in rotating order: `crt` (awscrt S3Client, send_filepath, CRC64NVME per part),
`pixel` (S3Store.write of the file, as an apply without a hash cache row: the whole-file md5 taken again),
`pixel-vouched` (the same with the hash cache vouching for the plan's md5: no md5 pass at all). Then the
same files downloaded: `crt get` (GET_OBJECT in ranged parts into the file, part checksums validated) and
`pixel get` (as a pull: streamed to a temp file, md5 checked, fsynced, renamed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.apply.vouched import CachedMd5s, VouchingFile
from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.observe.hashcache import FileKey, HashCache
from reconciler.stores.local import LocalStore
from reconciler.stores.s3 import S3Store

MIB = 1024 * 1024
PART = 8 * MIB  # both clients' part size (pixel's default)
LONG_AGO_NS = 1_000_000_000_000_000_000  # the files' mtime: long out of the hash cache's racy window


def make_files(folder: Path, count: int, mib: int) -> list[tuple[Path, str]]:
    files = []
    for i in range(count):
        path = folder / f"big-{i:02d}.bin"
        digest = hashlib.md5()
        with open(path, "wb") as f:
            for _ in range(mib):
                block = os.urandom(MIB)
                digest.update(block)
                f.write(block)
        os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
        files.append((path, digest.hexdigest()))
    return files


class Crt:
    """awscrt's S3Client on the server's plain-HTTP endpoint, static credentials, CRC64NVME per part."""

    def __init__(self, server: SeaweedServer, part_size: int) -> None:
        from awscrt.auth import AwsCredentialsProvider
        from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
        from awscrt.s3 import S3Client, S3RequestTlsMode, create_default_s3_signing_config

        loops = EventLoopGroup()
        bootstrap = ClientBootstrap(loops, DefaultHostResolver(loops))
        credentials = AwsCredentialsProvider.new_static(server.access_key, server.secret_key)
        self.host = server.endpoint.split("://", 1)[1]
        self.client = S3Client(
            bootstrap=bootstrap,
            region=server.region,
            tls_mode=S3RequestTlsMode.DISABLED,
            signing_config=create_default_s3_signing_config(region=server.region, credential_provider=credentials),
            part_size=part_size,
            multipart_upload_threshold=part_size,
        )

    def put(self, bucket: str, key: str, path: Path, md5: str, *, if_absent: bool = True) -> Future[None]:
        from awscrt.http import HttpHeaders, HttpRequest
        from awscrt.s3 import S3ChecksumAlgorithm, S3ChecksumConfig, S3ChecksumLocation, S3RequestType

        headers = HttpHeaders(
            [("Host", self.host), ("Content-Length", str(path.stat().st_size)), ("x-amz-meta-md5", md5)]
            + ([("If-None-Match", "*")] if if_absent else [])
        )
        request = HttpRequest("PUT", f"/{bucket}/{key}", headers)
        checksum = S3ChecksumConfig(algorithm=S3ChecksumAlgorithm.CRC64NVME, location=S3ChecksumLocation.TRAILER)
        done: Future[None] = Future()
        self.client.make_request(
            type=S3RequestType.PUT_OBJECT, request=request, send_filepath=str(path), checksum_config=checksum,
            on_done=_settles(done, key),
        )
        return done


    def get(self, bucket: str, key: str, path: Path) -> Future[None]:
        """GetObject in ranged parts straight into `path`, the parts' checksums validated where S3 has them."""
        from awscrt.http import HttpHeaders, HttpRequest
        from awscrt.s3 import S3ChecksumConfig, S3RequestType

        request = HttpRequest("GET", f"/{bucket}/{key}", HttpHeaders([("Host", self.host)]))
        done: Future[None] = Future()
        self.client.make_request(
            type=S3RequestType.GET_OBJECT, request=request, recv_filepath=str(path),
            checksum_config=S3ChecksumConfig(validate_response=True), on_done=_settles(done, key),
        )
        return done


def _settles(done: Future[None], key: str) -> Callable[..., None]:
    """An awscrt on_done that settles `done` (called on the CRT's own thread)."""

    def on_done(error: BaseException | None = None, status_code: int | None = None, **_: Any) -> None:
        if error is not None:
            done.set_exception(RuntimeError(f"crt {key}: {error} (status {status_code})"))
        else:
            done.set_result(None)

    return on_done


@contextmanager
def vouching(path: Path, md5: str, known: CachedMd5s) -> Iterator[BinaryIO]:
    with open(path, "rb") as f:
        yield VouchingFile(f, str(path), md5, known)  # type: ignore[misc]  # a BinaryIO by delegation


def pixel_store(server: SeaweedServer, bucket: str, parallelism: int) -> S3Store:
    """As build_store makes it, but multipart from one part up, as the CRT is told: at 64 MiB a file would
    otherwise go in one PutObject, and the case measured is the 256 MiB files' multipart."""
    spec = S3StoreSpec("bench", bucket, endpoint=server.endpoint, region=server.region, addressing_style="path")
    return S3Store(spec, max_pool_connections=parallelism + 8, list_concurrency=parallelism, multipart_threshold=PART)


def alternated(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Each contender once per round, the order rotating from round to round: per contender, (wall seconds,
    this process's CPU seconds over all its threads, the CRT's C threads included) of each run."""
    names = list(contenders)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_no in range(rounds):
        for name in names[round_no % len(names) :] + names[: round_no % len(names)]:
            start, cpu = time.perf_counter(), time.process_time()
            contenders[name]()
            runs[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return runs


def rows(runs: dict[str, list[tuple[float, float]]], total: int) -> dict[str, dict[str, list[float]]]:
    """MB/s (slowest first) and client CPU s/GB (least first) per contender."""
    return {
        name: {
            "mb_per_s": sorted(total / wall / 1e6 for wall, _ in values),
            "cpu_s_per_gb": sorted(cpu / total * 1e9 for _, cpu in values),
        }
        for name, values in runs.items()
    }


@contextmanager
def plain(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as f:
        yield f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=4, help="files in flight for pixel (as apply runs them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pixel-crt-"))
    try:
        with SeaweedServer() as server:
            for name, value in server.env().items():
                os.environ[name] = value
            files = make_files(work, args.files, args.mib)
            total = sum(path.stat().st_size for path, _ in files)
            cache_file = work / "hashes.sqlite"
            with HashCache(cache_file, clock=lambda: 2 * LONG_AGO_NS) as cache:
                for path, md5 in files:
                    cache.remember(FileKey.of(str(path), os.stat(path)), md5)
            crt = Crt(server, part_size=PART)

            def in_new_bucket(upload: Callable[[str], None], name: str) -> Callable[[], None]:
                def run() -> None:
                    bucket = server.create_bucket(f"crt-{name}-{uuid.uuid4().hex[:6]}")
                    try:
                        upload(bucket)
                    finally:
                        server.delete_bucket(bucket)

                return run

            def crt_up(bucket: str) -> None:
                for future in [crt.put(bucket, path.name, path, md5) for path, md5 in files]:
                    future.result()

            def pixel_up(bucket: str, vouched: bool) -> None:
                store = pixel_store(server, bucket, args.parallelism)
                known = CachedMd5s(lambda: HashCache(cache_file))

                def one(item: tuple[Path, str]) -> None:
                    path, md5 = item
                    opener = (lambda: vouching(path, md5, known)) if vouched else (lambda: plain(path))
                    store.write(path.name, opener, size=path.stat().st_size, md5=md5, if_absent=True)

                with ThreadPoolExecutor(max_workers=args.parallelism) as pool:
                    list(pool.map(one, files))
                store.transport.close()

            uploads = alternated(
                {
                    "crt": in_new_bucket(crt_up, "crt"),
                    "pixel": in_new_bucket(lambda bucket: pixel_up(bucket, False), "pixel"),
                    "pixel-vouched": in_new_bucket(lambda bucket: pixel_up(bucket, True), "vouched"),
                },
                args.rounds,
            )
            held = server.create_bucket(f"crt-held-{uuid.uuid4().hex[:6]}")
            pixel_up(held, True)
            into = work / "down"

            def fresh() -> Path:
                shutil.rmtree(into, ignore_errors=True)
                into.mkdir()
                return into

            def crt_down() -> None:
                folder = fresh()
                for future in [crt.get(held, path.name, folder / path.name) for path, _ in files]:
                    future.result()

            def pixel_down() -> None:
                # As a pull does it: each file streamed to a temp file, its md5 checked, fsynced, renamed.
                local, store = LocalStore("down", fresh()), pixel_store(server, held, args.parallelism)

                def one(item: tuple[Path, str]) -> None:
                    path, md5 = item
                    size = path.stat().st_size
                    local.write(path.name, lambda: store.open(path.name), size=size, md5=md5, if_absent=True)

                with ThreadPoolExecutor(max_workers=args.parallelism) as pool:
                    list(pool.map(one, files))
                store.transport.close()

            downloads = alternated({"crt get": crt_down, "pixel get": pixel_down}, args.rounds)
            server.delete_bucket(held)
            probe = conditional_probe(server, crt, files[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "files": args.files, "mib": args.mib, "rounds": args.rounds, "load": os.getloadavg(),
        "upload": rows(uploads, total), "download": rows(downloads, total),
        "crt_if_none_match_refused_an_overwrite": probe,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.files} x {args.mib} MiB, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
        for name, row in [*rows(uploads, total).items(), *rows(downloads, total).items()]:
            rates, used = row["mb_per_s"], row["cpu_s_per_gb"]
            print(f"  {name:14s} MB/s min {rates[0]:7.1f}  median {statistics.median(rates):7.1f}  "
                  f"max {rates[-1]:7.1f}   client CPU s/GB min {used[0]:5.2f}  median {statistics.median(used):5.2f}  "
                  f"max {used[-1]:5.2f}")
        print(f"  crt: If-None-Match: * refused a multipart overwrite: {probe}")
    return 0


def conditional_probe(server: SeaweedServer, crt: Crt, item: tuple[Path, str]) -> bool:
    """Whether awscrt's multipart PutObject carries If-None-Match: * through to its complete (a second upload
    over the object must fail and leave the first), the guard every pixel create has."""
    path, md5 = item
    bucket = server.create_bucket(f"crt-probe-{uuid.uuid4().hex[:6]}")
    try:
        crt.put(bucket, "k", path, md5).result()
        try:
            crt.put(bucket, "k", path, md5).result()
        except RuntimeError:
            return True
        return False
    finally:
        server.delete_bucket(bucket)


if __name__ == "__main__":
    raise SystemExit(main())
