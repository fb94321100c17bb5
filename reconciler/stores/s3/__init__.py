"""An S3 bucket as a Store: the only package that imports boto3 and botocore (and those only when first used).

store.py        S3Store: the Store protocol, its semantics held once over either transport
transport.py    the Transport protocol: the requests the store sends, in botocore's parameter names
direct/         the direct transport (raw.py): SigV4 (sigv4.py) over kept-alive connections (http_pool.py)
botocore_transport.py  the botocore transport, botocore's session and client, botocore deciding for the direct one
upload.py       integrity headers, part buffers, a big file's parts read, hashed and sent in parallel
download.py     streamed bodies resumed on the version first read
multipart.py    one journal / create / parts / complete-or-abort path, for uploads and copies
journal.py      the records of uploads in progress under .pixel/uploads/, and the abort of a killed apply's
errors.py       one reading of S3's failures: status, code, the StoreError they mean
objects.py      md5s and Entries out of listing rows and HEAD responses
conditions.py   the conditional requests (If-Match, If-None-Match, CopySourceIfMatch)
listing.py      listing a prefix in parallel ranges, and the fast ListObjectsV2 parser
credentials.py  static keys and region, read as botocore reads them
client.py       botocore tuned for pixel's traffic
"""

from reconciler.stores.s3.journal import UPLOAD_JOURNAL_PREFIX, JournaledUpload, journal_key
from reconciler.stores.s3.store import MIB, S3Store, make_client

__all__ = ["MIB", "UPLOAD_JOURNAL_PREFIX", "JournaledUpload", "S3Store", "journal_key", "make_client"]
