"""Segment many image files, on this machine or spread over a Dask cluster.

Each file becomes ``<out>/<id>.tif`` (instance labels, via
:func:`napari_cellseg.io.write_tiff_layer`), optionally ``<id>_probabilities.tif``
``<id>.csv`` (per-cell measurements), ``<id>.geojson`` (outlines for QuPath),
``<id>_rois.zip`` (outlines for Fiji) and ``<id>_overlay.png`` (the image with the
cells outlined). A file that fails is reported with
its name and the reason, and the run goes on with the others.

With a Dask ``scheduler`` the images travel as paths and the workers write the
results; each worker loads the model once (:func:`cached_model`, keyed by model
directory and device) and keeps it for every image it receives.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import JsonConfig
from ..io import find_images
from .batch_outputs import (
    input_image,
    output_paths,
    planes_alone,
    publish,
    requested,
    scratch_folder,
    staged_paths,
    stored_axes,
    write_extras,
)
from .batch_ownership import output_collisions, own_outputs, without_outputs
from .batch_stored import check_existing, name_file

# Planes with more pixels than this go through the block-wise (zarr) pipeline, one by one.
BIG_IMAGE_PIXELS = 6000 * 6000
_model_lock = threading.Lock()
# Worker threads of one process share one model: they take turns running it. Two
# forwards at once through one module were seen to disagree with a serial run (rarely,
# in tests with a threaded LocalCluster); processes, the usual Dask setup, are unaffected.
_inference_lock = threading.Lock()


@dataclass
class SegmentOptions(JsonConfig):
    """How :func:`segment_file` segments each image (sent to workers as a dict)."""

    tile_size: int = 512
    overlap: int = 64
    batch_size: int | None = None
    device: str = "auto"
    diameter: float | None = None  # nucleus diameter in px; 0 = estimate; None = the model's default_diameter
    channel: int | None = None
    save_probabilities: bool = False
    measurements: bool = False
    geojson: bool = False  # outlines for QuPath (outlines.write_geojson)
    overlays: bool = False  # <id>_overlay.png: the image with the cells outlined, to look through
    imagej_rois: bool = False  # <id>_rois.zip: the outlines for Fiji's ROI Manager
    overwrite: bool = False
    optimize: bool = False  # CPU: compiled network per tile shape (pays off over many images)
    tta: bool = False  # average over the 8 flips/quarter turns (8x the network time)
    tta_zoom: bool = False  # also over runtime.TTA_ZOOMS (3x the network time)
    haematoxylin_only: bool = False  # IHC: segment the unmixed haematoxylin (stains.haematoxylin_only)
    torch_threads: int | None = None  # per process; set for Dask workers sharing a machine
    big_image_pixels: int = BIG_IMAGE_PIXELS

    def __post_init__(self) -> None:
        from .tiled import check_tiling

        # Refused once here, not once per image by every worker.
        check_tiling(self.tile_size, self.overlap, self.batch_size)


@dataclass
class FileReport:
    """What happened to one image."""

    path: str
    image_id: str
    status: str  # "done" (outputs written), "skipped" (output exists) or "failed"
    message: str = ""
    output: str | None = None
    n_instances: int = 0
    seconds: float = 0.0
    note: str = ""  # a warning about a done image (e.g. how its axes were read)
    reason: str = ""  # ``message`` less its --overwrite advice, for the GUI (:func:`plain_message`)
    added: tuple[str, ...] = ()  # done without segmenting: these outputs were drawn from its stored cells


@dataclass
class BatchSummary:
    reports: list[FileReport] = field(default_factory=list)
    table: Path | None = None  # the combined table, once written (:func:`.batch_table.combine_measurements`)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.reports)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def describe(self) -> str:
        """One line: images segmented, given outputs from their stored cells, skipped and failed."""
        extended = sum(r.status == "done" and bool(r.added) for r in self.reports)
        extra = f"{extended} given extra outputs from their stored cells, " if extended else ""
        return (
            f"{len(self.reports)} image(s): {self.count('done') - extended} segmented, {extra}"
            f"{self.count('skipped')} skipped (output exists), {self.count('failed')} failed"
        )


@lru_cache(maxsize=4)
def _load_model(model_dir: str, device: str, stamp: tuple = ()):
    from .runtime import resolve_model

    return resolve_model(model_dir, device=device)


def cached_model(model_dir: str | os.PathLike, device: str = "auto"):
    """``(model, config)`` loaded once per process (each Dask worker keeps its own).

    A model folder retrained or replaced in place is loaded again: the files' sizes and
    times are part of the key.
    """
    folder = Path(model_dir).resolve()
    stamp = tuple(
        (f.name, f.stat().st_size, f.stat().st_mtime_ns)
        for f in (folder / "model.safetensors", folder / "config.json")
        if f.is_file()
    )
    with _model_lock:
        return _load_model(str(folder), device, stamp)


def segment_file(
    path: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SegmentOptions | dict | None = None,
) -> FileReport:
    """Segment one image file and write its outputs; never raises for a bad image.

    Returns
    -------
    FileReport
        ``status`` is ``"done"`` (segmented; or, its labels existing, given the outputs
        asked for since from them: ``added``), ``"skipped"`` (its labels exist and
        ``overwrite`` is off) or ``"failed"`` with the reason in ``message``.
        A failed image leaves no file behind and replaces none; a requested output that
        exists without ``overwrite`` fails the image (it may be the user's own file).
    """
    from ..io import ImageReadError
    from .images import ChannelsError

    options = SegmentOptions.from_dict(options) if isinstance(options, dict) else options
    options = options or SegmentOptions()
    path, out_dir = Path(path), Path(out_dir)
    image_id = path.stem
    outputs = output_paths(out_dir, image_id)
    report = FileReport(str(path), image_id, "done", output=str(outputs["labels"]))
    if any(output.resolve() == path.resolve() for output in outputs.values()):
        # e.g. segment same/*.tif --out same: the labels would replace the image itself
        report.status = "failed"
        report.message = f"{path}: its output would replace the image itself; choose another output folder"
        return report
    blocked = check_existing(path, outputs, options, report)  # stored cells, or files in the way
    if blocked is not None:
        return blocked
    start = time.perf_counter()
    try:
        report.n_instances, report.note = _segment_and_write(path, model_dir, outputs, options)
    except (ImageReadError, ValueError, FileExistsError) as err:
        report.status, report.message = "failed", name_file(path, err)
        if isinstance(err, ChannelsError):  # the GUI has no channel setting
            report.reason = name_file(
                path, f"{err.reason}: save its nuclear channel as an image file of its own"
            )
    except Exception as err:  # keep the batch going; say what and where
        report.status, report.message = "failed", f"{path}: {type(err).__name__}: {err}"
    report.seconds = time.perf_counter() - start
    return report


def plain_message(report: FileReport) -> str:
    """What happened to an image, without advice about ``--overwrite`` (for the GUI)."""
    return report.reason or report.message


def input_folder_as_output(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> Path | None:
    """The folder among ``paths`` that is ``out_dir`` itself, else None: the CLI and the GUI refuse it.

    Its results (``<id>.tif``, ``<id>_overlay.png``) would be images of the next run.
    """
    out = Path(out_dir).expanduser().resolve()
    return next((Path(p) for p in paths if Path(p).is_dir() and Path(p).expanduser().resolve() == out), None)


def _segment_and_write(
    path: Path, model_dir, outputs: dict[str, Path], options: SegmentOptions
) -> tuple[int, str]:
    """Segment one file and write its outputs: ``(number of cells, note about its axes or "")``."""

    from ..io import write_tiff_layer
    from .batch_big import needs_block_wise, segment_block_wise
    from .batch_ownership import OUTPUTS_KEY, digests
    from .images import describe_layout, stack_note
    from .runtime import TTA_ZOOMS
    from .segment import unscaled_note

    if options.torch_threads:
        import torch

        torch.set_num_threads(options.torch_threads)
    image = input_image(path, options)
    layout = describe_layout(image, options.channel)
    model, config = cached_model(model_dir, options.device)
    kwargs = dict(
        tile_size=options.tile_size, overlap=options.overlap, batch_size=options.batch_size,
        diameter=options.diameter, channel=options.channel, optimize=options.optimize,
        tta=options.tta, tta_zooms=TTA_ZOOMS if options.tta_zoom else None,
    )  # fmt: skip
    seen = image  # what the network gets; measurements read the image as it is
    if options.haematoxylin_only:
        from .stains import haematoxylin_only

        seen = haematoxylin_only(image, name=str(path))
    # Everything goes to a scratch folder first and is moved into place at the end: a
    # failure (or a kill) leaves no half of an image's outputs beside the files it had.
    notes = [unscaled_note(config, options.diameter)]  # one line per image, not a raw warning
    with scratch_folder(outputs["labels"].parent) as scratch:
        staged = staged_paths(scratch)
        with _inference_lock:
            # Each plane's own size decides, not C x H of a (C, H, W) image nor a whole stack.
            if needs_block_wise(layout, options.big_image_pixels):
                labels, probabilities, metadata = segment_block_wise(
                    model, config, seen, scratch, kwargs, options.save_probabilities
                )
            else:
                from .segment import segment_image, small_image_note

                result = segment_image(
                    model, config, seen, keep_probabilities=options.save_probabilities, warn_unscaled=False,
                    **kwargs,
                )  # fmt: skip
                notes.append(small_image_note(layout.plane_shape, result.scale_factor))
                labels, probabilities = result.labels, result.probabilities
                metadata = result.layer_attributes()["metadata"]
        metadata.update(
            source=str(path), source_path=str(path.resolve()), model=str(model_dir),
            haematoxylin_only=options.haematoxylin_only,
        )  # fmt: skip
        write_extras(path, image, layout, labels, staged, options)
        if options.save_probabilities and probabilities is not None:
            write_tiff_layer(
                staged["probabilities"], probabilities, "image",
                {"name": f"{path.stem} probabilities", "metadata": {"channels": ["background", "boundary", "interior"]}},
            )  # fmt: skip
        # What the labels vouch for: their outputs, told from the user's files by these digests.
        metadata[OUTPUTS_KEY] = digests({key: staged[key] for key in staged if key != "labels"})
        write_tiff_layer(
            staged["labels"], labels, "labels", {"name": f"{path.stem} cells", "metadata": metadata}
        )
        stale = own_outputs(outputs, legacy=False)  # the earlier labels' outputs: they go with them
        publish(staged, outputs, stale=stale)
    if not planes_alone(stored_axes(path), image.ndim):  # ZYX, TYX: no channels, --channel is refused
        notes.insert(0, stack_note(layout))
    if options.overlays and labels.ndim != 2:  # write_extras draws planes only
        notes.append("no overlay: a stack has no one picture to draw on")
    return (int(labels.max()) if labels.size else 0), "; ".join(filter(None, notes))


def iter_segment_files(
    paths: Iterable[str | os.PathLike],
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SegmentOptions | None = None,
    scheduler: Any = None,
    workers: int | None = None,
) -> Generator[FileReport, None, BatchSummary]:
    """Segment image files one by one (or on a Dask cluster), yielding a report per file.

    Parameters
    ----------
    paths : iterable of path
        Image files or folders of images.
    model_dir : path
        Model directory (model.safetensors + config.json).
    out_dir : path
        Where outputs go (created).
    options : SegmentOptions, optional
    scheduler : None, "local", an address, or a distributed Client/LocalCluster
        None runs here, in this process. ``"local"`` starts a LocalCluster of
        ``workers`` processes.
    workers : int, optional
        Processes of the local cluster (default: half the CPUs).

    Returns
    -------
    BatchSummary
        As the generator's return value.
    """
    options = options or SegmentOptions()
    out_dir = Path(out_dir)
    files = without_outputs(find_images(paths, exclude=out_dir), out_dir)
    summary = BatchSummary()
    collisions = output_collisions(files, out_dir, requested(options))
    for path, message in collisions.items():
        report = FileReport(str(path), path.stem, "failed", message)
        summary.reports.append(report)
        yield report
    todo = [path for path in files if path not in collisions]
    if scheduler is None:
        for path in todo:
            report = segment_file(path, model_dir, out_dir, options)
            summary.reports.append(report)
            yield report
        return summary
    from .batch_dask import run_on_dask

    yield from run_on_dask(todo, model_dir, out_dir, options, scheduler, workers, summary)
    return summary


def segment_files(
    paths: Iterable[str | os.PathLike],
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SegmentOptions | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    callback: Callable[[FileReport], None] | None = None,
) -> BatchSummary:
    """Synchronous :func:`iter_segment_files`; ``callback`` receives each report."""
    from .tiled import run_to_end

    return run_to_end(iter_segment_files(paths, model_dir, out_dir, options, scheduler, workers), callback)
