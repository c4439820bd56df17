"""What :mod:`.batch` finds where an image's outputs go: stored cells to reuse, or files in the way.

An image whose labels exist is skipped (an interrupted batch resumes) or given the outputs
asked for since, drawn from its stored cells. A file that is not the plugin's own
(:mod:`.batch_ownership`: a user's ``<id>.tif``, an expert's ``<id>.geojson``) is never read
as the image's results: the image fails, naming it, and the file is kept.
"""

from __future__ import annotations

from pathlib import Path

from .batch_outputs import add_missing_extras, requested
from .batch_ownership import not_stored_cells, other_source, own_outputs, stored_cells_metadata
from .batch_table import is_combined_table


def check_existing(path: Path, outputs: dict[str, Path], options, report):
    """``report`` finished when what exists decides the image (skipped, extended, failed); else None.

    None means: segment it. Labels that are not stored cells fail the image even with
    ``overwrite`` (they may be the user's own image); outputs asked for that exist fail
    it without ``overwrite``.
    """
    if outputs["labels"].exists():
        metadata = stored_cells_metadata(outputs["labels"])  # the header, read once
        if metadata is None:  # e.g. the user's own a.tif beside a.png: never read as cells, never replaced
            report.status = "failed"
            report.message = (
                f"{path}: {outputs['labels']} is in the way of its labels and is "
                f"{not_stored_cells(outputs['labels'])} (kept: it may be yours); move it away, or "
                "choose another output folder"
            )
            return report
        if not options.overwrite:
            return _reuse_stored(path, outputs, options, report, metadata)
    existing = [key for key in requested(options) if not _replaceable(outputs, key)]
    if existing and not options.overwrite:  # e.g. an expert's <id>.geojson beside the image
        return _kept(report, path, [outputs[key] for key in existing], "without its labels")
    return None


def name_file(path: Path, err: Exception | str) -> str:
    """``err`` as a message that names ``path`` once."""
    text = str(err)
    return text if str(path) in text else f"{path}: {text}"


def _reuse_stored(path: Path, outputs: dict[str, Path], options, report, metadata: dict):
    """An image whose stored cells exist (no overwrite): skipped, or its outputs asked for since added.

    ``metadata``: what the stored labels' header holds (:func:`.batch_ownership.stored_cells_metadata`).
    """
    from ..io import ImageReadError

    other = other_source(metadata, path)
    if other is not None:  # slideA/field1.png and slideB/field1.png into one folder
        report.status = "failed"
        found = f"{path}: {outputs['labels']} holds the cells of another image ({other}); use another output folder"
        report.reason, report.message = found, found + ", or --overwrite to replace them"
        return report
    own = own_outputs(outputs, requested(options), metadata=metadata)
    missing = [key for key in requested(options) if key not in own and _replaceable(outputs, key)]
    foreign = [outputs[key] for key in requested(options) if key not in own and key not in missing]
    if foreign:  # an expert's <id>.geojson, or an output edited since: not the labels' own
        return _kept(report, path, foreign, "that its labels did not write")
    report.status, report.reason = "skipped", f"{outputs['labels']} exists (kept)"
    report.message = f"{outputs['labels']} exists (use --overwrite)"
    if "probabilities" in missing:  # they were not kept: only a new segmentation gives them
        report.reason += "; its probabilities were not kept"
        report.message += "; its probabilities were not kept: --overwrite segments it again"
    elif missing:  # e.g. --measurements asked for on a second run: drawn from the stored cells
        try:
            report.n_instances, added = add_missing_extras(path, outputs, options, missing)
            if added:
                report.status, report.message, report.reason = "done", "", ""
                report.added = tuple(added)
                report.note = f"{', '.join(added)} added from the stored cells"
        except (ImageReadError, ValueError, OSError) as err:
            report.status, report.message, report.reason = "failed", name_file(path, err), ""
    return report


def _replaceable(outputs: dict[str, Path], key: str) -> bool:
    """An output that may be written without ``overwrite``: absent, or the combined table of
    an earlier run where an image called ``measurements`` puts its own table."""
    target = outputs[key]
    return not target.exists() or (
        key == "measurements" and is_combined_table(target, outputs["labels"].stem)
    )


def _kept(report, path: Path, files: list[Path], why: str):
    """``report`` failed: outputs asked for exist, ``why`` not the plugin's (they may be the user's)."""
    names = ", ".join(p.name for p in files)
    report.status = "failed"
    found = f"{path}: {names} already in {files[0].parent} {why} (kept: they may be yours); "
    report.reason = found + "move them away, or choose another output folder"
    report.message = found + (
        "use --overwrite to replace them (e.g. left by an interrupted run of an earlier version), "
        "or another output folder"
    )
    return report
