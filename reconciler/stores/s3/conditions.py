"""The conditional requests pixel sends, in botocore's parameter names (the direct transport's headers for them
are in HEADERS)."""

from __future__ import annotations

# botocore's parameter name -> the header it sends.
HEADERS = {
    "IfMatch": "If-Match",
    "IfNoneMatch": "If-None-Match",
    "CopySourceIfMatch": "x-amz-copy-source-if-match",
}


def quoted(etag: str) -> str:
    return f'"{etag.strip(chr(34))}"'


def conditions(*, if_match: str | None = None, if_absent: bool = False, src_etag: str | None = None) -> dict[str, str]:
    """botocore parameters: create only if absent, else overwrite only that version; copy only that source version."""
    out: dict[str, str] = {}
    if if_absent:
        out["IfNoneMatch"] = "*"
    elif if_match is not None:
        out["IfMatch"] = quoted(if_match)
    if src_etag is not None:
        out["CopySourceIfMatch"] = quoted(src_etag)
    return out
