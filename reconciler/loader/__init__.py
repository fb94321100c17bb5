"""The read side: training scripts stream registered datasets by name.

    from reconciler.loader import load_dataset, list_datasets
    ds = load_dataset("clinical_cot", specs="specs/")
    for record in ds: ...
"""

from reconciler.loader.api import DatasetFallbackWarning, list_datasets, load_dataset
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import DatasetChanged, StreamingDataset
from reconciler.loader.formats import DatasetFormatError, RecordFormat
from reconciler.loader.pipeline import interleave
from reconciler.loader.resolve import DatasetNotFound, SourceObject
from reconciler.loader.seed import S3DatasetLoader, load_dataset_from_s3

__all__ = [
    "DatasetChanged",
    "DatasetFallbackWarning",
    "DatasetFormatError",
    "DatasetNotFound",
    "ObjectCache",
    "RecordFormat",
    "S3DatasetLoader",
    "SourceObject",
    "StreamingDataset",
    "interleave",
    "list_datasets",
    "load_dataset",
    "load_dataset_from_s3",
]
