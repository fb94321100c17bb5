"""An S3 Inventory report read as a stream (`--scale stream`): its files merged lazily, as the in-memory read.

The reports are real files on disk, read through a `LocalStore` as pixel reads them from the reports bucket.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.model import Entry
from reconciler.observe import inventory
from reconciler.observe.inventory import InventoryError, InventoryListing, read_report, read_streamed
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SCHEMA = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag")
MANIFEST = "inv/data/cfg/2026-11-30T12-00Z/manifest.json"
MD5 = hashlib.md5(b"x").hexdigest()


@dataclass(frozen=True)
class Row:
    key: str
    size: int = 1
    etag: str = MD5
    latest: bool = True
    delete_marker: bool = False
    slash_safe: bool = True  # AWS URL-encodes keys; whether '/' is left as it is does not change the key read


def _cells(row: Row) -> list[str]:
    key = quote_plus(row.key, safe="/" if row.slash_safe else "")
    flags = ("true" if row.latest else "false", "true" if row.delete_marker else "false")
    return ["data", key, "", *flags, str(row.size), "2026-11-30T10:00:00.000Z", row.etag]


def deliver(root: Path, files: list[list[Row]]) -> LocalStore:
    """A report of `files` (each a data file's rows, in the order given) under `root`, as S3 Inventory lays it out."""
    named = []
    for index, rows in enumerate(files):
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(_cells(row) for row in rows)
        body = gzip.compress(text.getvalue().encode())
        key = f"inv/data/cfg/data/{index}.csv.gz"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
        named.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::reports", "version": "2016-11-30",
                "creationTimestamp": str(int(WHEN.timestamp() * 1000)), "fileFormat": "CSV",
                "fileSchema": ", ".join(SCHEMA), "files": named}
    (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(manifest))
    return LocalStore("reports", root)


def sorted_files(rows: list[Row], owners: list[int], count: int) -> list[list[Row]]:
    """`rows` dealt into `count` files by `owners`, each file sorted by the key's UTF-8 bytes, as AWS sorts it."""
    files: list[list[Row]] = [[] for _ in range(count)]
    for row, owner in zip(rows, owners, strict=False):
        files[owner % count].append(row)
    return [sorted(rows, key=lambda r: r.key.encode()) for rows in files]


# '/' (0x2F) sorts after '.' (0x2E) but its URL encoding '%2F' before it; 'é', '中' and '😀' are 2, 3 and 4
# UTF-8 bytes, and '😀' sorts after '\uffff' by UTF-8 bytes (and code points) but before it in UTF-16;
# ' ' and '+' are what quote_plus turns into each other. Short keys: the same key in two files is common.
KEYS = st.text(st.sampled_from(["a", "/", ".", " ", "+", "%", "é", "中", "😀", "\uffff"]), min_size=1, max_size=3)
ROWS = st.builds(
    Row,
    key=KEYS,
    size=st.integers(0, 10**12),
    etag=st.sampled_from([MD5, "0" * 32, f"{MD5}-3"]),
    latest=st.sampled_from([True, True, True, False]),
    delete_marker=st.sampled_from([False, False, False, True]),
    slash_safe=st.booleans(),
)
EDGES = [Row("😀", 1), Row("\uffff", 2), Row("a/b", 3, slash_safe=False), Row("a.b", 4), Row("a", 5), Row("a", 6),
         Row("a ", 7), Row("a+", 8), Row("a", 9, latest=False), Row("é/", 10)]


@settings(max_examples=80, deadline=None)
@example(rows=EDGES, owners=[0, 1, 0, 1, 0, 1, 2, 0, 1, 0], count=4, prefixes=["", "a", "a/"])
@example(rows=EDGES, owners=[0] * 10, count=1, prefixes=["😀", "\uffff"])
@given(
    rows=st.lists(ROWS, max_size=40),
    owners=st.lists(st.integers(0, 7), max_size=40),
    count=st.integers(1, 6),
    prefixes=st.lists(st.sampled_from(["", "a", "a/", "a.", "é", "中", "😀", "%", "+"]), min_size=1, max_size=3),
)
def test_the_streamed_read_lists_what_the_in_memory_read_lists(
    rows: list[Row], owners: list[int], count: int, prefixes: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reports = deliver(Path(tmp) / "reports", sorted_files(rows, owners, count))
        in_memory = read_report(reports, MANIFEST, expected_bucket="data")
        streamed = read_streamed(reports, MANIFEST, expected_bucket="data", directory=Path(tmp) / "spool")
        assert list(streamed.listed("")) == list(in_memory.entries)
        assert streamed.count == in_memory.count
        live = MemoryStore("s3")  # a multipart object's HEAD finds nothing: its entry stays as the report says
        for prefix in prefixes:
            expected = list(InventoryListing(live, in_memory).list(prefix))
            assert list(InventoryListing(live, streamed).list(prefix)) == expected
            assert all(e.key.startswith(prefix) for e in expected)


def test_the_merge_holds_one_row_per_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [[Row(f"k/{i:05d}.{f}") for i in range(f, 3000, 7)] for f in range(7)]
    files.append([])  # an empty data file holds no row at all
    report = read_streamed(deliver(tmp_path / "reports", files), MANIFEST, expected_bucket="data",
                           directory=tmp_path / "spool")
    read = 0
    real = inventory._file_entries

    def counted(path: Path, columns: tuple[str, ...], where: str) -> Iterator[Entry]:
        nonlocal read
        for entry in real(path, columns, where):
            read += 1
            yield entry

    monkeypatch.setattr(inventory, "_file_entries", counted)
    listed = 0
    most = 0
    for listed, _entry in enumerate(report.listed("k/"), 1):
        most = max(most, read - listed)  # read from the files, not yet handed on
    assert listed == report.count == 3000
    assert most <= len(files), f"the merge held {most} rows at once, for {len(files)} data files"


def test_a_data_file_out_of_key_order_is_refused_naming_it_and_the_key(tmp_path: Path) -> None:
    # "a.b" < "a/b" by bytes, though "a%2Fb" (how the file spells it) < "a.b": the decoded key decides.
    files = [[Row("a"), Row("c")], [Row("a/b", slash_safe=False), Row("a.b"), Row("z")]]
    reports = deliver(tmp_path / "reports", files)
    with pytest.raises(InventoryError) as refused:
        read_streamed(reports, MANIFEST, expected_bucket="data", directory=tmp_path / "spool")
    assert str(refused.value).startswith("reports:inv/data/cfg/data/1.csv.gz: the data file is not sorted by key: "
                                         "'a.b' comes after 'a/b'")
    # In memory the report is sorted whole: the same file reads there.
    assert [e.key for e in read_report(reports, MANIFEST, expected_bucket="data").entries] == ["a", "a.b", "a/b", "c",
                                                                                             "z"]


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("damage", "manifest_agrees", "message"),
    [
        (lambda body: body[:-3], False, "the data file's md5 is not the manifest's MD5checksum"),
        (lambda body: b"not gzip" + body, True, "not a gzip-compressed UTF-8 CSV file"),
        (lambda body: gzip.compress(b'"data","b"\n'), True, "row 1 has 2 columns, fileSchema names 8"),
    ],
)
def test_a_damaged_data_file_is_one_clear_error_either_way(
    tmp_path: Path, streamed: bool, damage: Callable[[bytes], bytes], manifest_agrees: bool, message: str
) -> None:
    reports = deliver(tmp_path / "reports", [[Row("a")], [Row("b")]])
    path = tmp_path / "reports" / "inv/data/cfg/data/1.csv.gz"
    path.write_bytes(damage(path.read_bytes()))
    if manifest_agrees:  # the manifest's md5 is the bytes': only their form is wrong
        manifest = json.loads((tmp_path / "reports" / MANIFEST).read_text())
        manifest["files"][1]["MD5checksum"] = hashlib.md5(path.read_bytes()).hexdigest()
        (tmp_path / "reports" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InventoryError, match=f"^reports:inv/data/cfg/data/1.csv.gz: {message}"):
        if streamed:
            read_streamed(reports, MANIFEST, expected_bucket="data", directory=tmp_path / "spool")
        else:
            read_report(reports, MANIFEST, expected_bucket="data")


def test_a_report_that_cannot_be_copied_to_disk_is_one_clear_error(tmp_path: Path) -> None:
    reports = deliver(tmp_path / "reports", [[Row("a")]])
    (tmp_path / "taken").write_bytes(b"")  # where the copies go is a file: an OSError, as a full disk gives
    with pytest.raises(InventoryError, match=r"^cannot keep a copy of the S3 Inventory data file reports:inv/data/"):
        read_streamed(reports, MANIFEST, expected_bucket="data", directory=tmp_path / "taken")
