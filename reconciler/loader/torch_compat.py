"""The dataset as a torch IterableDataset, for DataLoader. Imported only when torch is already in use."""

from __future__ import annotations

from torch.utils.data import IterableDataset  # type: ignore[import-not-found, unused-ignore]

from reconciler.loader.dataset import StreamingDataset


class TorchStreamingDataset(StreamingDataset, IterableDataset):  # type: ignore[misc, unused-ignore]
    """Splits its records over DataLoader workers by torch.utils.data.get_worker_info()."""
