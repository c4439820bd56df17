"""An image's output files in :mod:`.batch`: where they go and how they are put there.

Every output of one image is written into a hidden scratch folder in the output folder
(short names there, so an image name near the 255-character limit still fits), then
moved into place, labels first (the files they replace removed before). So a failed
image leaves nothing behind, a file that exists is only replaced with ``overwrite``, and
the plugin's outputs of earlier labels are never left stale beside new ones: those the new
run does not write again go (:mod:`.batch_ownership` tells them from the user's own files
beside the image, ``<id>.geojson``, ``<id>.csv`` ..., which are never removed). A scratch
folder left by a killed run is removed by the next run that writes to the same folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# output key -> SegmentOptions field that asks for it (the labels are always written)
OPTION = {
    "probabilities": "save_probabilities", "measurements": "measurements", "geojson": "geojson",
    "overlay": "overlays", "imagej_rois": "imagej_rois",
}  # fmt: skip
_STAGED_NAMES = {
    "labels": "labels.tif", "probabilities": "probabilities.tif", "measurements": "cells.csv",
    "geojson": "cells.geojson", "overlay": "overlay.png", "imagej_rois": "rois.zip",
}  # fmt: skip
SCRATCH_PREFIX = ".cellseg-"
_LOCK_NAME = "in-use.lock"
# A scratch folder without a lock file is one being made (a moment) or an older version's.
_UNLOCKED_AGE_S = 3600
_cleaned: set[str] = set()  # output folders already swept by this process


def output_paths(out_dir: Path, image_id: str) -> dict[str, Path]:
    return {
        "labels": out_dir / f"{image_id}.tif",
        "probabilities": out_dir / f"{image_id}_probabilities.tif",
        "measurements": out_dir / f"{image_id}.csv",
        "geojson": out_dir / f"{image_id}.geojson",
        "overlay": out_dir / f"{image_id}_overlay.png",
        "imagej_rois": out_dir / f"{image_id}_rois.zip",
    }


def requested(options) -> list[str]:
    """The output keys besides the labels that ``options`` ask for."""
    return [key for key, option in OPTION.items() if getattr(options, option)]


def staged_paths(scratch: Path) -> dict[str, Path]:
    return {key: scratch / name for key, name in _STAGED_NAMES.items()}


def publish(staged: dict[str, Path], outputs: dict[str, Path], stale=()) -> list[str]:
    """Move the staged files into place, labels first (they mark the image done); the keys moved.

    The files a staged one replaces go first, and so do ``stale`` ones (outputs of the
    labels being replaced that this run does not write again): a crash after the new labels
    then leaves extras missing (a rerun draws them from the labels), never old ones beside
    new cells.
    """
    for key, path in outputs.items():
        if key != "labels" and path.exists() and (key in stale or (key in staged and staged[key].exists())):
            path.unlink()
    moved = []
    for key in sorted(staged, key=lambda k: k != "labels"):
        if staged[key].exists():
            os.replace(staged[key], outputs[key])
            moved.append(key)
    return moved


@contextmanager
def scratch_folder(out_dir: Path, prefix: str = SCRATCH_PREFIX, sweep: bool = True) -> Iterator[Path]:
    """A hidden folder in ``out_dir`` for one image's files (or a big image's probabilities),
    removed afterwards.

    A lock held on a file inside tells other runs that it is in use; a folder whose lock
    nobody holds was left by a killed run and is removed (:func:`remove_abandoned_scratch`,
    first, unless ``sweep`` is False).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if sweep:
        remove_abandoned_scratch(out_dir)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir))
    lock = open(folder / _LOCK_NAME, "wb")  # held until the folder goes
    try:
        _try_lock(lock)
        yield folder
    finally:
        lock.close()
        shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned_scratch(out_dir: Path) -> None:
    """Remove the scratch folders in ``out_dir`` that no running process holds (once per process)."""
    key = str(out_dir.resolve())
    if key in _cleaned:
        return
    _cleaned.add(key)
    try:
        candidates = [e for e in os.scandir(out_dir) if e.name.startswith(SCRATCH_PREFIX) and e.is_dir()]
    except OSError:
        return
    for entry in candidates:
        folder = Path(entry.path)
        try:
            with open(folder / _LOCK_NAME, "rb+") as lock:
                if not _try_lock(lock):
                    continue  # another run is using it
        except FileNotFoundError:
            try:
                if time.time() - folder.stat().st_mtime < _UNLOCKED_AGE_S:
                    continue
            except OSError:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _try_lock(fh) -> bool:
    """Take an exclusive lock on an open file without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here, so nothing counts as abandoned
        return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def input_image(path: Path, options):
    """The image as segmentation and measurements read it.

    A TIFF whose own axes name channels (OME ``CYX``) has them read as channels, never as
    z-planes, and leading axes of one (``(1, H, W)``, ``(1, 1, H, W)``) are dropped.
    """
    from ..io import collapse_grey_rgb, read_image
    from .images import squeeze_leading_axes

    image = _channels_as_stored(path, read_image(path), options.channel)
    image = squeeze_leading_axes(image, options.channel)
    if options.channel is None:  # a chosen channel of grey stored as RGB is that grey
        image = collapse_grey_rgb(image)
    return image


def stored_axes(path: Path) -> str:
    """A TIFF's axes as io reads its pixels (samples ``S`` last); "" for other files or none."""
    import tifffile

    from ..image_formats import tiff_axes

    if path.suffix.lower() not in (".tif", ".tiff"):
        return ""
    try:
        with tifffile.TiffFile(path) as tif:
            return tiff_axes(tif)
    except Exception:  # read_image has read it; no axes to go by
        return ""


def planes_alone(axes: str, ndim: int) -> bool:
    """Whether ``axes`` of an ``ndim``-D image name planes (``ZYX``, ``TYX``) and no channel."""
    return len(axes) == ndim and not set(axes) & set("CS") and bool(set(axes) & set("ZT"))


def _channels_as_stored(path: Path, image, channel: int | None):
    """``image`` with a TIFF's ``C`` axis where :func:`.images.describe_layout` reads channels.

    Without ``channel`` a file of several channels is refused: segmenting DAPI and GFP as two
    z-planes gave a stack of both with no word said.
    """
    import numpy as np

    axes = stored_axes(path)
    if channel is not None and planes_alone(axes, image.ndim):
        # without this, --channel N took plane N of a z-stack or a time-lapse as a channel
        every = " (every plane is segmented on its own)" if image.ndim == 3 else ""
        raise ValueError(
            f"its axes are {axes}: no channel for --channel {channel} to choose; leave it out{every}. "
            "If its planes are channels, the file says otherwise: save it with axes CYX (tifffile: "
            "metadata={'axes': 'CYX'}; Fiji: Image > Hyperstacks > Stack to Hyperstack, channels)"
        )
    if "C" not in axes or len(axes) != image.ndim or image.shape[axes.index("C")] == 1:
        return image
    where, count = axes.index("C"), image.shape[axes.index("C")]
    if channel is None:
        colour = (
            " If they are the red, green and blue of a colour (brightfield, H&E) image, save it as RGB "
            "(tifffile: photometric='rgb'; Fiji: Image > Type > RGB Color)."
            if count == 3 and image.ndim == 3
            else ""
        )
        raise ValueError(
            f"its axes are {axes}: {count} channels, not z-planes; choose the nuclear stain with "
            f"--channel N (0 to {count - 1}). If they are z-planes, the file says otherwise (tifffile "
            "writes CYX when no axes are given): save it with axes ZYX (tifffile: metadata={'axes': "
            f"'ZYX'}}; Fiji: Image > Properties, slices).{colour}"
        )
    # A (C, H, W) image: channel N is read from axis 0; with more axes, from the last.
    return np.moveaxis(image, where, 0 if image.ndim == 3 else -1)


def write_extras(path: Path, image, layout, labels, targets: dict[str, Path], options, only=None) -> None:
    """The outputs drawn from the labels (table, outlines, overlay) that ``options`` ask for."""
    import numpy as np

    wanted = set(requested(options)) & set(only or OPTION)
    if "measurements" in wanted:
        from .measure import measure_cells, write_measurements

        intensity = image if layout.channel is None else np.take(image, layout.channel, axis=layout.channel_axis)  # fmt: skip
        write_measurements(targets["measurements"], measure_cells(labels, intensity, path.stem))
    if "geojson" in wanted:
        from .outlines import write_geojson

        write_geojson(targets["geojson"], labels, image_id=path.stem)
    if "imagej_rois" in wanted:
        from .outlines import write_imagej_rois

        write_imagej_rois(targets["imagej_rois"], labels)
    if "overlay" in wanted and labels.ndim == 2:  # stacks: no single picture to draw on
        from .outlines import write_overlay

        write_overlay(targets["overlay"], image, labels)


def add_missing_extras(path: Path, outputs: dict[str, Path], options, missing: list[str]) -> tuple[int, list]:
    """A segmented image's outputs asked for since, drawn from its stored labels: (cells, outputs added).

    The labels are written again with the same cells, their record of outputs
    (:mod:`.batch_ownership`) now holding the new ones too, and moved into place first.
    """
    from ..io import read_tiff_layer, write_tiff_layer
    from .batch_ownership import OUTPUTS_KEY, TRUSTED_KEY, digests, own_outputs
    from .images import describe_layout

    image = input_image(path, options)
    labels, attributes, _ = read_tiff_layer(outputs["labels"])
    metadata = dict(attributes.get("metadata") or {})
    # Labels of an earlier version record nothing: the outputs beside them, trusted by name
    # as then (one may be a user's file), go to the trusted record, never made removable.
    own = own_outputs(outputs, metadata=metadata, legacy=OUTPUTS_KEY not in metadata)
    if OUTPUTS_KEY not in metadata:
        metadata[TRUSTED_KEY] = {key: digest for key, digest in own.items() if key != "labels"}
        own = {}
    kept = {key: digest for key, digest in own.items() if key != "labels"}
    with scratch_folder(outputs["labels"].parent) as scratch:
        staged = staged_paths(scratch)
        write_extras(path, image, describe_layout(image, options.channel), labels, staged, options, missing)
        written = {key: staged[key] for key in missing if staged[key].exists()}  # a stack gets no overlay
        added = []
        if written:
            metadata[OUTPUTS_KEY] = {**kept, **digests(written)}
            trusted = metadata.get(TRUSTED_KEY)
            if isinstance(trusted, dict):  # what is written now is the plugin's own
                metadata[TRUSTED_KEY] = {key: d for key, d in trusted.items() if key not in written}
            write_tiff_layer(staged["labels"], labels, "labels", {**attributes, "metadata": metadata})
            added = [
                key for key in publish({"labels": staged["labels"], **written}, outputs) if key != "labels"
            ]
    return (int(labels.max()) if labels.size else 0), added
