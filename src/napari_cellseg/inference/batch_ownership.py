"""Which files in a batch's output folder are the plugin's own: told by content, never by name alone.

An image's ``<id>.tif`` holds stored cells only when its TIFF header holds the labels layer
that :mod:`.batch` writes (``layer_type`` labels and a recorded ``source`` image). Those
labels record a SHA-256 digest of every other output written with them or drawn from them
since (``metadata["outputs"]``), so an output counts as the plugin's only while it is the
very file that was written. A user's own ``<id>.tif``, ``<id>.geojson`` or ``<id>.csv`` (or
an output edited since) is never taken for stored cells, never removed as stale, never read
into the combined table and never left out of the images to segment. Labels of an earlier
version, without that record, vouch for the outputs beside them by name, as they did then,
but never get them removed: when such labels are first written again, those outputs go to a
record of their own (``metadata["outputs_by_name"]``), still trusted, never removable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .batch_outputs import output_paths

OUTPUTS_KEY = "outputs"  # labels metadata: output key -> SHA-256 of the file written
# labels metadata: output key -> SHA-256 of an earlier version's output, trusted by its name
# (it may be a user's file): it counts as the image's, but is never removed as stale
TRUSTED_KEY = "outputs_by_name"
# What each output is, for messages that name a collision.
OUTPUT_NAMES = {
    "labels": "labels", "probabilities": "probabilities", "measurements": "table",
    "geojson": "outlines", "overlay": "overlay", "imagej_rois": "ROI set",
}  # fmt: skip


def stored_cells_metadata(labels_path: Path) -> dict | None:
    """The metadata of labels that :mod:`.batch` wrote at ``labels_path``; None for any other file."""
    from ..io import stored_layer

    if not labels_path.is_file():
        return None
    stored = stored_layer(labels_path)
    metadata = stored.get("metadata")
    if stored.get("layer_type") != "labels" or not isinstance(metadata, dict):
        return None
    return metadata if isinstance(metadata.get("source"), str) else None


def not_stored_cells(labels_path: Path) -> str:
    """Why an existing ``labels_path`` is not labels that :mod:`.batch` wrote ("" when it is)."""
    from ..io import stored_layer

    if stored_cells_metadata(labels_path) is not None:
        return ""
    if labels_path.stat().st_size == 0:
        return "an empty file"
    kind = stored_layer(labels_path).get("layer_type")
    if kind == "labels":
        return "labels that record no source image, not written by segment"
    if kind == "image":
        return "an image saved by napari-cellseg, not labels"
    return "not a labels TIFF written by napari-cellseg"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def digests(paths: dict[str, Path]) -> dict[str, str]:
    """``{key: SHA-256}`` of the files among ``paths`` that exist (to record in the labels)."""
    return {key: file_digest(path) for key, path in paths.items() if path.is_file()}


def own_outputs(
    outputs: dict[str, Path], keys=None, legacy: bool = True, metadata: dict | None = None
) -> dict[str, str]:
    """``{key: SHA-256}`` of an image's outputs that are the plugin's (``"labels"``: ``""``).

    Nothing when its labels are not stored cells. Of the other outputs (``keys`` only, when
    given), those whose digest the labels recorded; when ``legacy``, also those trusted by
    name (for labels of an earlier version without a record, every one that exists, as then;
    else those in the labels' :data:`TRUSTED_KEY` record). ``legacy=False``: only outputs the
    plugin wrote itself, the ones it may remove.
    """
    metadata = metadata if metadata is not None else stored_cells_metadata(outputs["labels"])
    if metadata is None:
        return {}
    record = metadata.get(OUTPUTS_KEY)
    if not isinstance(record, dict) and not legacy:
        return {"labels": ""}
    own = {"labels": ""}
    for key in keys if keys is not None else outputs:
        path = outputs[key]
        if key == "labels" or not path.is_file():
            continue
        if not isinstance(record, dict):
            own[key] = file_digest(path)
            continue
        trusted = metadata.get(TRUSTED_KEY) if legacy else None
        for recorded in (record, trusted if isinstance(trusted, dict) else {}):
            if isinstance(recorded.get(key), str) and file_digest(path) == recorded[key]:
                own[key] = recorded[key]
                break
    return own


def other_source(metadata: dict, image_path: Path) -> str | None:
    """The image stored cells were segmented from when it is another file than ``image_path``.

    slideA/field1.png and slideB/field1.png both have id ``field1``: the second run must
    not take the first one's cells for its own. A recorded source that no longer exists
    cannot be compared and passes.
    """
    source = metadata.get("source")
    recorded = Path(metadata["source_path"]) if isinstance(metadata.get("source_path"), str) else Path(source)
    import filecmp

    try:  # a copy of the same file (the folder copied, the run resumed from it) is the same image
        same = recorded.samefile(image_path) or filecmp.cmp(recorded, image_path, shallow=False)
    except OSError:  # gone, moved, or relative to another working folder
        return None
    return None if same else source


def without_outputs(files: list[Path], out_dir: Path) -> list[Path]:
    """``files`` less those that are another listed image's outputs in ``out_dir``, by content.

    Results written beside the images (``imgs/*.png --out imgs``) must not be taken for
    images by the next run (it segmented ``a_overlay.png``, then ``a_overlay_overlay.png``),
    but a user's own ``a.tif`` beside ``a.png`` is an image like any other.
    """
    resolved = {path: path.resolve() for path in files}
    listed = set(resolved.values())
    drop: set[Path] = set()
    for path in files:
        outputs = output_paths(Path(out_dir), path.stem)
        keys = [k for k, o in outputs.items() if o.resolve() in listed and o.resolve() != resolved[path]]
        if keys:
            drop |= {outputs[key].resolve() for key in own_outputs(outputs, keys) if key in keys}
    return [path for path in files if resolved[path] not in drop]


def output_collisions(files: list[Path], out_dir: Path, written: list[str]) -> dict[Path, str]:
    """``{image: why it fails}`` for the images whose outputs would meet another image's.

    Checked up front, over the whole list: an output path that an earlier image's outputs
    also have (``x.png`` and ``x_probabilities.png``, ``a.png`` and ``a.tif``; any of its
    outputs, asked for or not, so a later run asking for more cannot collide), and an output
    asked for (``written``, the labels always) that would replace another listed image.
    """
    resolved = {path: path.resolve() for path in files}
    inputs = {where: path for path, where in resolved.items()}
    claimed: dict[Path, tuple[Path, str]] = {}  # output -> (image, key)
    failed: dict[Path, str] = {}
    for path in files:
        outputs = {key: out.resolve() for key, out in output_paths(Path(out_dir), path.stem).items()}
        clash = next(((key, out) for key, out in outputs.items() if out in claimed), None)
        hit = next((key for key in ["labels", *written] if inputs.get(outputs[key], path) != path), None)
        if clash is not None:
            other, other_key = claimed[clash[1]]
            if other.stem == path.stem:
                failed[path] = f"{path}: same id as {other}; outputs would collide"
            else:
                failed[path] = (
                    f"{path}: its {OUTPUT_NAMES[clash[0]]} {clash[1].name} would also be the "
                    f"{OUTPUT_NAMES[other_key]} of {other}; outputs would collide: rename one of them"
                )
        elif hit is not None:
            failed[path] = (
                f"{path}: its {OUTPUT_NAMES[hit]} would replace {inputs[outputs[hit]]}, an image of this run; "
                "choose another output folder"
            )
        claimed.update({out: (path, key) for key, out in outputs.items() if out not in claimed})
    return failed
