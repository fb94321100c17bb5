"""The botocore-free fast path: small PUTs and listing pages signed (sigv4.py) and sent (http_pool.py) directly."""

from reconciler.stores.s3.direct.raw import RawS3, direct, direct_base, through_botocore

__all__ = ["RawS3", "direct", "direct_base", "through_botocore"]
