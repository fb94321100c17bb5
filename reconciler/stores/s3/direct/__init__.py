"""The direct transport (raw.py): S3 requests signed (sigv4.py) and sent (http_pool.py) without botocore.

Nothing is imported here: stores/s3/errors.py reads http_pool.py, which raw.py builds on.
"""
