"""Credentials and endpoints without botocore: the same answers botocore gives, or None (botocore decides)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Literal

import boto3
import botocore.session
import pytest
from botocore.config import Config

from reconciler.model import S3StoreSpec
from reconciler.stores.s3.credentials import StaticCredentials, static_access
from reconciler.stores.s3.direct.raw import direct_base

SPEC = S3StoreSpec(name="s3", bucket="bucket", endpoint="http://127.0.0.1:9000", addressing_style="path")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE", raising=False)
    (tmp_path / ".aws").mkdir()
    return tmp_path


def botocore_view(spec: S3StoreSpec, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> StaticCredentials:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = boto3.session.Session(botocore_session=botocore.session.Session(), profile_name=spec.profile)
    frozen = session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    return StaticCredentials(frozen.access_key, frozen.secret_key, frozen.token or None)  # type: ignore[arg-type]


def test_environment_keys_with_a_session_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOK"}
    access = static_access(SPEC, env)
    assert access is not None and access.credentials == StaticCredentials("AK", "SK", "TOK")
    assert access.credentials == botocore_view(SPEC, env, monkeypatch)


def test_profile_from_aws_profile_in_the_shared_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n"
        "[work]\naws_access_key_id = W\naws_secret_access_key = WS\n"
    )
    (home / ".aws" / "config").write_text("[profile work]\nregion = eu-west-3\n")
    env = {"AWS_PROFILE": "work"}
    access = static_access(SPEC, env)
    assert access is not None and access.credentials == StaticCredentials("W", "WS") and access.region == "eu-west-3"
    assert access.credentials == botocore_view(SPEC, env, monkeypatch)
    default = static_access(SPEC, {})
    assert default is not None and default.credentials.access_key == "D"


def test_keys_in_the_config_file_and_files_moved_by_environment(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.ini"
    config.write_text("[profile p]\naws_access_key_id = C\naws_secret_access_key = CS\naws_session_token = T\n")
    spec = S3StoreSpec(name="s3", bucket="b", endpoint="http://x", addressing_style="path", profile="p")
    access = static_access(
        spec,
        {
            "AWS_CONFIG_FILE": str(config),
            "AWS_ACCESS_KEY_ID": "ignored-for-a-spec-profile",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no"),
        },
    )
    assert access is not None and access.credentials == StaticCredentials("C", "CS", "T")


@pytest.mark.parametrize(
    "config",
    [
        "[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n",
        "[profile p]\nsso_session = s\n",
        "[profile p]\ncredential_process = /bin/creds\n",
        "[profile p]\nregion = us-east-1\ns3 =\n  addressing_style = virtual\n",
        "[profile p]\nendpoint_url = http://other\n",
        "not an ini file",
    ],
)
def test_profile_features_it_does_not_handle_go_to_botocore(home: Path, config: str) -> None:
    (home / ".aws" / "config").write_text(config)
    (home / ".aws" / "credentials").write_text("[p]\naws_access_key_id = K\naws_secret_access_key = S\n")
    assert static_access(SPEC, {"AWS_PROFILE": "p"}) is None


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_PROFILE": "missing"},  # botocore's ProfileNotFound
        {"AWS_ACCESS_KEY_ID": "only-half"},
        {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"},
        {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_ENDPOINT_URL_S3": "http://x"},
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_ROLE_ARN": "arn"},
        {},  # nothing static: IMDS, containers... are botocore's
    ],
)
def test_anything_else_goes_to_botocore(home: Path, env: dict[str, str]) -> None:
    assert static_access(SPEC, env) is None


@pytest.mark.parametrize(
    ("endpoint", "style", "bucket", "region"),
    [
        ("http://127.0.0.1:8333", "path", "data", "us-east-1"),
        ("https://minio.example:9000/base/", "path", "my-bucket", "eu-west-1"),
        ("https://storage.example", "virtual", "my-bucket", "eu-west-1"),
        (None, "path", "my-bucket", "eu-central-1"),
        (None, "auto", "my-bucket", "ap-southeast-2"),
        (None, "virtual", "my-bucket", "us-west-2"),
    ],
)
def test_direct_base_is_where_botocore_sends_the_request(
    endpoint: str | None, style: Literal["auto", "path", "virtual"], bucket: str, region: str
) -> None:
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=endpoint, addressing_style=style, region=region)
    base = direct_base(spec, region)
    assert base is not None
    client = boto3.session.Session(aws_access_key_id="A", aws_secret_access_key="S").client(
        "s3",
        endpoint_url=endpoint,
        config=Config(region_name=region, s3={"addressing_style": style}),
    )
    sent: list[str] = []

    class Sent(Exception):
        pass

    def capture(request: object, **kwargs: object) -> None:
        sent.append(str(getattr(request, "url", "")))
        raise Sent

    client.meta.events.register("before-send.s3.GetObject", capture)
    with pytest.raises(Sent):
        client.get_object(Bucket=bucket, Key="k")
    url = urllib.parse.urlsplit(sent[0])
    assert base + "k" == f"{url.scheme}://{url.netloc}{url.path}"


@pytest.mark.parametrize(
    ("endpoint", "style", "bucket", "region"),
    [
        ("http://127.0.0.1:8333", "auto", "data", "us-east-1"),  # botocore's endpoint rules choose
        (None, "auto", "dotted.bucket", "us-east-1"),
        (None, "path", "b", "cn-north-1"),
        (None, "path", "b", None),
    ],
)
def test_direct_base_leaves_the_rest_to_botocore(
    endpoint: str | None, style: str, bucket: str, region: str | None
) -> None:
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=endpoint, addressing_style=style, region=region)
    assert direct_base(spec, region) is None


def test_keys_named_in_the_spec_come_first_on_the_direct_path_too() -> None:
    spec = S3StoreSpec(
        name="ovh",
        bucket="pixel-data",
        region="gra",
        credentials_env=(("aws_access_key_id", "OVH_ACCESS_KEY"), ("aws_secret_access_key", "OVH_SECRET_KEY")),
    )
    env = {"OVH_ACCESS_KEY": "ovh-ak", "OVH_SECRET_KEY": "ovh-sk", "AWS_ACCESS_KEY_ID": "aws-ak",
           "AWS_SECRET_ACCESS_KEY": "aws-sk"}
    found = static_access(spec, env)
    assert found is not None
    assert (found.credentials, found.region) == (StaticCredentials("ovh-ak", "ovh-sk"), "gra")
    with pytest.raises(Exception, match="OVH_SECRET_KEY") as err:
        static_access(spec, {"OVH_ACCESS_KEY": "ovh-ak"})
    assert "ovh-ak" not in str(err.value)
