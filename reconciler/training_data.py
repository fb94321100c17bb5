"""Seed 004's Python API (`TrainingDataManifest`, `TrainingDataSync`) over pixel's model.

The seed's scripts call these names; here each is a thin layer over the very functions the HTTP service runs
(reconciler.service.mutations and the service's manifest writer), so a change made from Python is what the
same change made over HTTP is: a local edit plus a targeted `pixel apply --target actors/ID`, under the bucket
lock, behind the same guards. Nothing here writes a manifest by hand: pixel renders it from the stores.

    from reconciler.training_data import TrainingDataManifest, TrainingDataSync

    manifest = TrainingDataManifest(42, specs="specs")
    entry = manifest.add_image(Path("portrait.jpg"))        # uploaded, manifest rewritten; the new entry
    manifest.remove_image(entry["filename"])                # out of the manifest, S3 kept; delete_from_s3=True: both
    TrainingDataSync("specs").sync_actor_training_data(42)  # seed 004's API document

Images are JPEG bytes or paths to JPEG files. The specs directory defaults to `PIXEL_SPECS`, else `specs`, as
for the CLI. A refusal (a guard, a bad name, S3 unreachable) raises `TrainingDataError` and changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from reconciler.errors import UserError
from reconciler.service import mutations
from reconciler.service.state import Rendered, Service, ServiceError

Image = bytes | str | os.PathLike[str]
T = TypeVar("T")


class TrainingDataError(UserError):
    """A refused or failed call; `status` is the HTTP status the service answers the same request with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _specs(specs: str | os.PathLike[str] | None) -> Path:
    return Path(specs if specs is not None else os.environ.get("PIXEL_SPECS", "specs"))


def _call(work: Callable[[], T]) -> T:
    try:
        return work()
    except ServiceError as exc:
        raise TrainingDataError(exc.status, exc.message) from exc


def _document(rendered: Rendered) -> dict[str, Any]:
    document = json.loads(rendered.body)
    assert isinstance(document, dict)
    return document


def _bytes(image: Image) -> bytes:
    if isinstance(image, bytes):
        return image
    try:
        return Path(image).read_bytes()
    except OSError as exc:
        raise TrainingDataError(400, f"cannot read the image {os.fspath(image)}: {exc}") from exc


def _name(image: Image, i: int) -> str:
    """The name the image arrives under: a path's own (adding an excluded file name back lifts its exclusion)."""
    return f"image #{i}" if isinstance(image, bytes) else Path(image).name


class TrainingDataManifest:
    """One actor's manifest (`data/actor_manifests/{id}_manifest.json`): its entries, and the seed's mutations."""

    def __init__(
        self,
        actor_id: int | str,
        specs: str | os.PathLike[str] | None = None,
        *,
        max_image_bytes: int = mutations.DEFAULT_MAX_IMAGE_BYTES,
        lock_timeout: float = 30.0,
    ) -> None:
        self.actor_id = str(actor_id)
        self.max_image_bytes = max_image_bytes
        self._service = Service(_specs(specs), lock_timeout=lock_timeout)

    @property
    def path(self) -> Path:
        """Where the manifest is on disk (it may not exist yet: `save()` writes it)."""
        ws, actor = _call(lambda: self._service.actor(self.actor_id))
        return self._service.manifest_path(ws.desired, actor)

    def get_all_images(self) -> list[dict[str, Any]]:
        """The manifest's `training_data` entries as on disk (seed 004's entry fields); [] before it exists."""
        try:
            manifest = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise TrainingDataError(500, f"the manifest {self.path} cannot be read ({exc})") from exc
        entries = manifest.get("training_data") if isinstance(manifest, dict) else None
        if not isinstance(entries, list):
            raise TrainingDataError(500, f"the manifest {self.path} has no training_data list")
        return entries

    def _entries(self, names: Sequence[str]) -> list[dict[str, Any]]:
        by_name = {entry.get("filename"): entry for entry in self.get_all_images()}
        return [by_name[name] for name in names]

    def add_generation(self, images: Sequence[Image]) -> list[dict[str, Any]]:
        """Add a generation of images, named {actor_name}_{next index}.jpg in order, in one targeted apply;
        their new manifest entries. A path named like an image excluded from the manifest is added back under
        that name, lifting the exclusion (its bytes replace the object S3 kept, where the actor pushes)."""
        files = [(_name(image, i), _bytes(image)) for i, image in enumerate(images)]
        service = self._service
        _, _, names = _call(lambda: mutations.add_images(service, self.actor_id, files, self.max_image_bytes))
        return self._entries(names)

    def add_image(self, image: Image) -> dict[str, Any]:
        """Add one image; its new manifest entry."""
        return self.add_generation([image])[0]

    def remove_image(self, filename: str, *, delete_from_s3: bool = False) -> dict[str, Any]:
        """Remove the image from the manifest with its local copy; its S3 object too with `delete_from_s3`
        (within the delete guards), else S3 keeps it and it stays excluded from the manifest (pixel neither
        lists, downloads nor deletes it) until re-included or added back. Seed 004's API document after it."""
        service = self._service
        return _document(
            _call(lambda: mutations.remove_image(service, self.actor_id, filename, delete_from_s3=delete_from_s3))
        )

    def include_image(self, filename: str) -> dict[str, Any]:
        """Lift an exclusion: the image S3 kept is listed again (and downloaded where the actor pulls); its entry."""
        service = self._service
        _call(lambda: mutations.include_image(service, self.actor_id, filename))
        return self._entries([filename])[0]

    def update_image(self, filename: str, image: Image) -> dict[str, Any]:
        """Replace the image's bytes; the apply re-uploads it and recomputes its md5. Its new manifest entry."""
        body = _bytes(image)
        service = self._service
        _call(lambda: mutations.replace_image(service, self.actor_id, filename, body, self.max_image_bytes))
        return self._entries([filename])[0]

    def save(self) -> Path:
        """Write the manifest as the stores are now (each mutation above has already saved its own); its path.

        Unchanged bytes are not rewritten; a file changed since it was read is not overwritten (If-Match)."""
        service = self._service

        def write() -> Path:
            ws, actor = service.actor(self.actor_id, fresh=True)
            service.write_manifest(ws, actor, replace=True)
            return service.manifest_path(ws.desired, actor)

        return _call(write)


class TrainingDataSync:
    """Seed 004's S3 synchronisation, per actor; each answer is seed 004's API document."""

    def __init__(self, specs: str | os.PathLike[str] | None = None, *, lock_timeout: float = 30.0) -> None:
        self._service = Service(_specs(specs), lock_timeout=lock_timeout)

    def auto_initialize_manifest(self, actor_id: int | str) -> dict[str, Any]:
        """Observe the actor's directory and S3 prefix and create (or update) its manifest from them; nothing
        is uploaded or downloaded."""
        service = self._service

        def write() -> Rendered:
            ws, actor = service.actor(str(actor_id), fresh=True)
            return service.write_manifest(ws, actor, replace=True)

        return _document(_call(write))

    def sync_actor_training_data(self, actor_id: int | str) -> dict[str, Any]:
        """The full sync: `pixel apply --target actors/ID` (uploads or downloads per the actor's authority,
        deletes only where the specs prune), then the manifest."""
        service = self._service
        return _document(_call(lambda: mutations.sync_actor(service, str(actor_id))))
