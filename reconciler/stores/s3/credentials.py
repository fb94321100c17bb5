"""Static AWS credentials and the region, read the way botocore reads them, without importing botocore.

Importing boto3 and building a session costs a warm no-op plan more than
everything else it does. Most machines that run pixel have plain keys: in the
environment (CI) or in `~/.aws/credentials` (a laptop). For exactly those this
reads the same values botocore's provider chain would return first
(https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html):

1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SECURITY_TOKEN` or
   `AWS_SESSION_TOKEN`), unless the spec names a profile (botocore then drops
   its environment provider);
2. the profile (spec `profile`, else `AWS_DEFAULT_PROFILE`, else `AWS_PROFILE`,
   else `default`) in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
   default `~/.aws/credentials`), then in the config file (`AWS_CONFIG_FILE`,
   default `~/.aws/config`, section `[profile NAME]` or `[default]`).

Anything this does not fully understand answers None, and the caller goes through
botocore's whole chain (SSO, assume-role, web identity, credential_process,
containers, IMDS): a profile with any key but keys, token and region; a
temporary environment key with an expiry; a named profile that is missing; a
file that does not parse; any environment variable that moves botocore's
endpoint or credential choice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model import S3StoreSpec
from reconciler.stores.base import PermanentStoreError

_KEY, _SECRET = "aws_access_key_id", "aws_secret_access_key"
_TOKENS = ("aws_security_token", "aws_session_token")  # botocore's order: the first one present wins
_CREDENTIAL_KEYS = frozenset({_KEY, _SECRET, *_TOKENS})
# In the config file a profile may also say where (region) and how the CLI prints (output, CLI-only).
_CONFIG_KEYS = _CREDENTIAL_KEYS | {"region", "output"}
# Environment variables under which botocore would choose differently than the reading below.
_BOTOCORE_ONLY_ENV = (
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    "AWS_S3_USE_ARN_REGION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_SIGV4A_SIGNING_REGION_SET",
)


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Named like botocore's ReadOnlyCredentials, so either can sign a direct request."""

    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class StaticAccess:
    credentials: StaticCredentials
    region: str | None  # spec, else AWS_DEFAULT_REGION, else the profile's; None when none says


def _read_ini(path: str) -> dict[str, dict[str, str]] | None:
    """{section: {key: value}}; {} for a missing file; None for one botocore might read otherwise."""
    path = os.path.expanduser(os.path.expandvars(path))
    if not os.path.isfile(path):
        return {}
    # Imported only when a file is there to read: keys from the environment (CI, the warm no-op) need no parser.
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read([path])
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None
    return {section: dict(parser.items(section)) for section in parser.sections()}


def _static(values: Mapping[str, str]) -> StaticCredentials | None:
    key, secret = values.get(_KEY, ""), values.get(_SECRET, "")
    if not key or not secret:
        return None
    token = next((values[name] for name in _TOKENS if name in values), None)
    return StaticCredentials(key, secret, token or None)


def _from_environment(env: Mapping[str, str]) -> StaticCredentials | bool | None:
    """The environment's keys; False when it has none at all, None when botocore must judge (partial keys)."""
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key and not secret:
        return False
    if not key or not secret:
        return None  # botocore raises PartialCredentialsError: let it say so
    token = next((env[name] for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN") if name in env), None)
    return StaticCredentials(key, secret, token or None)


def _profile_name(spec: S3StoreSpec, env: Mapping[str, str]) -> tuple[str, bool] | None:
    """(profile, named explicitly); None for a name botocore must judge (an empty one)."""
    if spec.profile is not None:
        return (spec.profile, True) if spec.profile else None
    for variable in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE"):  # botocore's order
        if variable in env:
            return (env[variable], True) if env[variable] else None
    return "default", False


def _region(spec: S3StoreSpec, env: Mapping[str, str], profile: Mapping[str, str]) -> str | None:
    return spec.region or env.get("AWS_DEFAULT_REGION") or profile.get("region") or None


def env_credentials(spec: S3StoreSpec, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The keys of a store whose spec names the environment variables holding them; {} for the AWS chain.

    Messages name the variables, never their values."""
    env = os.environ if env is None else env
    missing = [name for _, name in spec.credentials_env if not env.get(name)]
    if missing:
        raise PermanentStoreError(
            f'store "{spec.name}": credentials_env names {", ".join(missing)}, which '
            f"{'is' if len(missing) == 1 else 'are'} not set (export it, or pass --env-file / PIXEL_ENV_FILE)",
            code="NoCredentials",
        )
    return {field: env[name] for field, name in spec.credentials_env}


def static_access(spec: S3StoreSpec, env: Mapping[str, str]) -> StaticAccess | None:
    """The credentials and region botocore would use for `spec`, when they are plain; else None.

    One entry point for every way a store's credentials are given, so a store-level source
    (credentials named in the spec) plugs in here ahead of the environment, as in botocore's chain.
    """
    if spec.credentials_env:  # named in the spec: botocore gets them as explicit keys, first in its chain too
        keys = env_credentials(spec, env)
        given = StaticCredentials(
            keys["aws_access_key_id"], keys["aws_secret_access_key"], keys.get("aws_session_token")
        )
        return StaticAccess(given, spec.region or env.get("AWS_DEFAULT_REGION") or None)
    if any(name in env for name in _BOTOCORE_ONLY_ENV):
        return None
    named = _profile_name(spec, env)
    if named is None:
        return None
    profile, explicit = named
    config = _read_ini(env.get("AWS_CONFIG_FILE", "~/.aws/config"))
    shared = _read_ini(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))
    if config is None or shared is None:
        return None
    sections = [name for name in (f"profile {profile}", profile) if name in config]
    if profile != "default":
        sections = [name for name in sections if name != profile]  # only [default] goes without "profile "
    if len(sections) > 1:
        return None  # both [default] and [profile default]: botocore's merge rules decide
    in_config = config[sections[0]] if sections else {}
    in_shared = shared.get(profile)
    if set(in_config) - _CONFIG_KEYS or (in_shared is not None and set(in_shared) - _CREDENTIAL_KEYS):
        return None  # roles, SSO, processes, endpoints, per-service settings: botocore's
    if explicit and not sections and in_shared is None:
        return None  # botocore raises ProfileNotFound, even with keys in the environment: let it say so
    if spec.profile is None:  # a profile named in the spec drops botocore's environment provider
        from_env = _from_environment(env)
        if from_env is None:
            return None
        if isinstance(from_env, StaticCredentials):
            return StaticAccess(from_env, _region(spec, env, in_config))
    for values in (in_shared or {}, in_config):
        found = _static(values)
        if found is not None:
            return StaticAccess(found, _region(spec, env, in_config))
        if any(name in values for name in _CREDENTIAL_KEYS):
            return None  # half a key pair: botocore's error, or its next provider
    return None  # nothing static: containers, IMDS and the rest are botocore's
