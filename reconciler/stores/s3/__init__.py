"""An S3 bucket as a Store: the only package that imports boto3 and botocore (and those only when first used).

store.py        S3Store: the Store protocol over botocore, and the direct path where it is plain
errors.py       one reading of S3's failures: status, code, the StoreError they mean
objects.py      md5s and Entries out of listing rows and HEAD responses
conditions.py   the conditional requests (If-Match, If-None-Match, CopySourceIfMatch), for both paths
multipart.py    one journal / create / parts / complete-or-abort path, for uploads and copies
journal.py      the records of uploads in progress under .pixel/uploads/, and the abort of a killed apply's
listing.py      listing a prefix in parallel ranges, and the fast ListObjectsV2 parser
credentials.py  static keys and region, read as botocore reads them
client.py       botocore tuned for pixel's traffic
direct/         the botocore-free requests: raw.py, sigv4.py, http_pool.py
"""

from reconciler.stores.s3.journal import UPLOAD_JOURNAL_PREFIX, JournaledUpload, journal_key
from reconciler.stores.s3.store import MIB, S3Store, make_client

__all__ = ["MIB", "UPLOAD_JOURNAL_PREFIX", "JournaledUpload", "S3Store", "journal_key", "make_client"]
