"""Secrets never reach a log line, a message or a saved plan.

`redact` is the structlog processor every event goes through; the end-to-end tests run `pixel`'s own
entry (in this process, as its child would: pipes, its environment) with debug logging and a distinctive
secret, and look for it everywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from reconciler import logs
from reconciler.choices import LogFormat
from reconciler.dev.seaweed import SeaweedServer
from reconciler.logs import configure_logging, get_logger, mask, redact
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

SECRET = "Zq9-pixel-SECRET-do-not-print-7Wk"
TOKEN = "FQoGZXIvYXdzEJr-pixel-SESSION-TOKEN-do-not-print"
SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, "
    f"SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature={SIGNATURE}"
)


def scrub(**fields: Any) -> dict[str, Any]:
    return dict(redact(None, "debug", dict(fields)))


# --- redact: fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "secret",
        "session_token",
        "password",
        "credentials",
        "Authorization",
        "signature",
        "access_key",
        "X-Amz-Security-Token",
    ],
)
def test_a_field_named_like_a_secret_is_replaced_whatever_its_value(name: str) -> None:
    assert scrub(**{name: SECRET}) == {name: "[redacted]"}
    assert scrub(**{name: {"nested": SECRET}}) == {name: "[redacted]"}
    assert scrub(**{name: 12345}) == {name: "[redacted]"}


def test_other_fields_are_left_alone() -> None:
    fields = {"event": "uploaded", "key": "raw/a.json", "size": 12, "ok": True, "etag": None, "ratio": 0.5}
    assert scrub(**fields) == fields


# --- redact: values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"aws_secret_access_key={SECRET}", "aws_secret_access_key=[redacted]"),
        (f"aws_secret_access_key = {SECRET} (from ~/.aws/credentials)",
         "aws_secret_access_key = [redacted] (from ~/.aws/credentials)"),
        (f"export AWS_SECRET_ACCESS_KEY={SECRET}; run", "export AWS_SECRET_ACCESS_KEY=[redacted]; run"),
        (f"--aws-secret-access-key={SECRET}", "--aws-secret-access-key=[redacted]"),
        (f"aws_session_token={TOKEN}", "aws_session_token=[redacted]"),
        (f"Authorization: {AUTHORIZATION}", "Authorization: [redacted]"),
        (f"authorization={AUTHORIZATION}\nnext line", "authorization=[redacted]\nnext line"),
        (f"X-Amz-Security-Token: {TOKEN}", "X-Amz-Security-Token: [redacted]"),
        (f"x-amz-security-token:{TOKEN}", "x-amz-security-token:[redacted]"),
        (f"Signature={SIGNATURE}", "Signature=[redacted]"),
        # botocore's DEBUG line for a request is the repr of a dict of bytes headers.
        (
            f"headers={{'Authorization': b'{AUTHORIZATION}', 'X-Amz-Security-Token': b'{TOKEN}', "
            "'X-Amz-Date': b'20240101T000000Z'}",
            "headers={'Authorization': b'[redacted]', 'X-Amz-Security-Token': b'[redacted]', "
            "'X-Amz-Date': b'20240101T000000Z'}",
        ),
        # A JSON body (STS, a credentials file dumped by mistake).
        (
            f'{{"SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}", "Expiration": "2030-01-01"}}',
            '{"SecretAccessKey": "[redacted]", "SessionToken": "[redacted]", "Expiration": "2030-01-01"}',
        ),
        # A presigned URL.
        (
            f"https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIDEXAMPLE%2F20240101&X-Amz-Security-Token={TOKEN}"
            f"&X-Amz-Signature={SIGNATURE}&versionId=3",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=[redacted]&X-Amz-Security-Token=[redacted]"
            "&X-Amz-Signature=[redacted]&versionId=3",
        ),
    ],
)
def test_credential_looking_text_is_masked(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert scrub(event=text, error=text) == {"event": expected, "error": expected}


@pytest.mark.parametrize(
    "text",
    [
        "signature_version=s3v4",
        "secret scanning is on; 3 tokens left",
        "uploaded raw/signature.json (12 B)",
        "SignedHeaders=host;x-amz-date",
    ],
)
def test_text_that_only_mentions_a_secret_word_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_nested_values_and_objects_rendered_as_text_are_masked_too() -> None:
    error = RuntimeError(f"request failed: Authorization: {AUTHORIZATION}")
    harmless = RuntimeError("no such key")
    event = scrub(
        headers={"Authorization": AUTHORIZATION, "X-Amz-Security-Token": TOKEN, "Host": "s3"},
        attempts=[{"sent": f"X-Amz-Security-Token: {TOKEN}"}, 2],
        error=error,
        other=harmless,
    )
    assert event == {
        "headers": {"Authorization": "[redacted]", "X-Amz-Security-Token": "[redacted]", "Host": "s3"},
        "attempts": [{"sent": "X-Amz-Security-Token: [redacted]"}, 2],
        "error": "request failed: Authorization: [redacted]",
        "other": harmless,  # left as the object: the renderer shows it as before
    }


# --- the configured pipeline -----------------------------------------------------------------------


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """structlog's configuration and pixel's own choice of format, as they were: a test after this one (the
    progress tests) must not find JSON logging left on."""
    saved, fmt, rendered = structlog.get_config(), logs._FORMAT["name"], logs._JSON[0]
    yield
    structlog.configure(**saved)
    logs._FORMAT["name"], logs._JSON[0] = fmt, rendered


@pytest.mark.parametrize("fmt", list(LogFormat))
def test_configured_logging_redacts_before_rendering(
    fmt: LogFormat, restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt, verbose=True)
    get_logger("pixel.test").debug(
        f"sending with X-Amz-Security-Token: {TOKEN}",
        aws_secret_access_key=SECRET,
        headers={"Authorization": AUTHORIZATION},
        detail=f"aws_secret_access_key={SECRET}",
    )
    err = capsys.readouterr().err
    assert "sending with X-Amz-Security-Token: [redacted]" in err
    for secret in (SECRET, TOKEN, SIGNATURE, "AKIDEXAMPLE"):
        assert secret not in err
    if fmt == "json":
        line = json.loads(err)
        assert line["aws_secret_access_key"] == "[redacted]" and line["level"] == "debug"


def test_verbose_does_not_turn_on_botocores_own_debug_logging(restore_structlog: None) -> None:
    """botocore logs every request's headers (Authorization, X-Amz-Security-Token) at DEBUG through the
    standard `logging` module, which structlog's redact never sees: -v must leave it off."""
    configure_logging(LogFormat.JSON, verbose=True)
    for name in ("botocore", "botocore.endpoint", "botocore.auth", "boto3", "urllib3", "s3transfer"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name


# --- end to end: the real console script, debug logging on -------------------------------------------


def assert_nowhere(run: Run, *files: Path, secrets: tuple[str, ...] = (SECRET, TOKEN)) -> None:
    for secret in secrets:
        assert secret not in run.out and secret not in run.err
        for file in files:
            if file.exists():
                assert secret not in file.read_text()
    # Nor anything of botocore's own request logging (headers, signatures) leaked onto stderr.
    for marker in ("botocore", "Sending http request", "Authorization", "Signature=", "X-Amz-Security-Token"):
        assert marker not in run.err


def plan_verbose(specs: Path, out: Path, env: dict[str, str]) -> Run:
    return pixel_in_process(["plan", "-v", "--log-format", "json", "--specs", str(specs), "-out", str(out)], env)


@pytest.mark.usefixtures("retries_on_a_clock_that_does_not_wait")
def test_a_refused_connection_prints_no_secret(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.json").write_text("{}")
    specs = write_specs(
        tmp_path / "specs", endpoint="http://127.0.0.1:9", bucket="pixel-data", root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/"}],
    )
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PIXEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    run = plan_verbose(specs, tmp_path / "plan.json", env)
    assert run.code == 1
    assert "EndpointConnectionError" in run.err and "http://127.0.0.1:9" in run.err
    assert_nowhere(run, tmp_path / "plan.json")


@pytest.mark.integration
def test_wrong_credentials_for_a_real_server_print_no_secret(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.json").write_text("{}")
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/"}],
    )
    env = {**seaweed.env(), "AWS_SECRET_ACCESS_KEY": SECRET, "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    run = plan_verbose(specs, tmp_path / "plan.json", env)
    assert run.code == 1 and "denied (403 SignatureDoesNotMatch)" in run.err
    assert_nowhere(run, tmp_path / "plan.json")

    with_token = plan_verbose(specs, tmp_path / "plan.json", {**env, "AWS_SESSION_TOKEN": TOKEN})
    assert with_token.code == 1
    assert_nowhere(with_token, tmp_path / "plan.json")


@pytest.mark.integration
def test_a_successful_verbose_plan_and_apply_print_and_save_no_credential(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "raw" / f"{name}.json").write_text(f'{{"id": "{name}"}}')
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/", "prune": True}],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    saved = tmp_path / "plan.json"
    planned = plan_verbose(specs, saved, env)
    assert planned.code == 0, planned.err
    assert json.loads(saved.read_text())["applyable"] is True
    applied = pixel_in_process(
        ["apply", "-v", "--log-format", "json", "--specs", str(specs), "--format", "json", str(saved)], env
    )
    assert applied.code == 0, applied.err
    credentials = (seaweed.secret_key, seaweed.access_key)
    assert_nowhere(planned, saved, secrets=credentials)
    assert_nowhere(applied, secrets=credentials)
