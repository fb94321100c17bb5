from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.model import S3StoreSpec
from reconciler.spec import SpecErrors, load_desired
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.s3.credentials import env_credentials

SPEC = """\
stores:
  ovh:
    type: s3
    bucket: pixel-data
    credentials_env: {access_key_id: OVH_ACCESS_KEY, secret_access_key: %s}
"""


def test_a_store_names_the_variables_that_hold_its_keys(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPEC % "OVH_SECRET_KEY")
    spec = load_desired(tmp_path, {}).stores["ovh"]
    assert isinstance(spec, S3StoreSpec)
    names = dict(spec.credentials_env)
    assert names == {"aws_access_key_id": "OVH_ACCESS_KEY", "aws_secret_access_key": "OVH_SECRET_KEY"}
    keys = env_credentials(spec, {"OVH_ACCESS_KEY": "ak", "OVH_SECRET_KEY": "sk"})
    assert keys == {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}
    with pytest.raises(PermanentStoreError, match="OVH_SECRET_KEY, which is not set") as err:
        env_credentials(spec, {"OVH_ACCESS_KEY": "ak-value"})
    assert "ak-value" not in str(err.value)


def test_a_value_where_a_name_belongs_is_a_spec_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPEC % "'abc/DEF+secret=='")
    with pytest.raises(SpecErrors) as err:
        load_desired(tmp_path, {})
    message = str(err.value.errors[0])
    assert "s.yaml:5" in message and "an environment variable name" in message
