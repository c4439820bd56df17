"""The work behind ``napari-cellseg segment`` (the parser lives in :mod:`.commands`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..cli import CommandError, check_out_folder, is_terminal


def run_segment(args: argparse.Namespace) -> int:
    """Segment every image of ``args.paths``; exit status 1 if any failed, 0 otherwise."""
    from tqdm import tqdm

    from .batch import (
        SegmentOptions,
        cached_model,
        find_images,
        input_folder_as_output,
        iter_segment_files,
        without_outputs,
    )
    from .batch_table import combine_measurements, combined_table_path, is_combined_table
    from .runtime import ModelNotFoundError, pick_device, resolve_model_dir
    from .segment import SmallImageWarning
    from .tiled import run_to_end

    warnings.filterwarnings("ignore", category=SmallImageWarning)  # each image's note says it

    try:
        model_dir = resolve_model_dir(args.model)
        if args.scheduler is None:  # workers elsewhere may have other devices
            pick_device(args.device)
    except (ModelNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from None
    if args.diameter is not None and args.diameter < 0:
        raise CommandError(f"--diameter must be >= 0 (0 = estimate), got {args.diameter}")
    if args.diameter is not None:
        _refuse_unusable_diameter(model_dir, args.diameter)
    if args.tile < 32:
        raise CommandError(f"--tile must be >= 32 pixels, got {args.tile}")
    if not 0 <= args.overlap <= args.tile // 2:
        raise CommandError(
            f"--overlap must be in [0, {args.tile // 2}] (at most half of --tile), got {args.overlap}"
        )
    if args.workers is not None and args.scheduler != "local":
        raise CommandError("--workers sets the processes of --scheduler local; add --scheduler local")
    if args.workers is not None and args.workers < 1:  # 0 fell back to the default, < 0 hung
        raise CommandError(f"--workers must be >= 1 (processes of the local cluster), got {args.workers}")
    if args.batch_size is not None and args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1 (tiles per forward pass), got {args.batch_size}")
    out_dir = Path(args.out)
    check_out_folder(out_dir)  # one clear error, not one failure per image
    if input_folder_as_output(args.paths, out_dir) is not None:  # as the Segment panel refuses it
        raise CommandError(
            f"--out {out_dir} is also an input folder: choose another output folder "
            "(its results would be taken for images by the next run)"
        )
    options = SegmentOptions(
        tile_size=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        diameter=args.diameter,
        channel=args.channel,
        save_probabilities=args.save_probabilities,
        measurements=args.measurements,
        geojson=args.geojson,
        overlays=args.overlays,
        imagej_rois=args.imagej_rois,
        overwrite=args.overwrite,
        optimize=args.optimize,
        tta=args.tta,
        tta_zoom=args.tta_zoom,
        haematoxylin_only=args.haematoxylin_only,
    )
    n_files = len(without_outputs(find_images(args.paths, exclude=out_dir), out_dir))
    if n_files == 0:
        raise CommandError(f"no images found in {' '.join(map(str, args.paths))}")
    if args.scheduler is None:  # a broken model fails once here, not once per image
        try:
            cached_model(model_dir, args.device)
        except Exception as err:  # any load failure is the model's, not an image's
            text = str(err)
            raise CommandError(text if str(model_dir) in text else f"{model_dir}: {text}") from None
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else "this machine"
    print(f"segmenting {n_files} image(s) with {model_dir} on {where}; outputs in {out_dir}", file=sys.stderr)
    live = not args.quiet and is_terminal(sys.stderr)  # a log file gets a line per image instead
    bar = tqdm(total=n_files, unit="image", file=sys.stderr, disable=not live)
    count = 0

    def report(file_report) -> None:
        nonlocal count
        count += 1
        bar.update(1)
        if not live and not args.quiet and file_report.status == "done":
            print(f"[{count}/{n_files}] {file_report.path}: {file_report.n_instances} cells", file=sys.stderr)
        if file_report.status == "failed":
            bar.write(f"error: {file_report.message}", file=sys.stderr)
        elif file_report.status == "skipped":
            bar.write(f"skipped: {file_report.message}", file=sys.stderr)
        if file_report.note:
            bar.write(f"note: {file_report.path}: {file_report.note}", file=sys.stderr)
        if file_report.status == "done":
            bar.set_postfix_str(f"{file_report.image_id}: {file_report.n_instances} cells")

    generator = iter_segment_files(
        args.paths, model_dir, out_dir, options, scheduler=args.scheduler, workers=args.workers
    )
    try:
        summary = run_to_end(generator, report)
    except ConnectionError as err:  # the Dask scheduler could not be reached
        raise CommandError(str(err)) from None
    finally:
        bar.close()
    # A combined table of an earlier run is brought up to date too: new labels take their tables with them.
    table = combined_table_path(out_dir, summary)
    refresh = args.measurements or is_combined_table(table, table.stem)
    combined = combine_measurements(out_dir, summary) if refresh else None
    if combined is not None:
        print(f"wrote {combined[1]} cell measurement(s) to {combined[0]}")
    print(summary.describe())
    for file_report in summary.reports:
        if file_report.status == "failed":
            print(f"  failed: {file_report.message}", file=sys.stderr)
    return 0 if summary.ok else 1


def _refuse_unusable_diameter(model_dir: Path, diameter: float) -> None:
    """Refuse ``--diameter`` for a model without a training scale, before any image is read.

    As in Cellpose, ``--diameter`` rescales every image to the model's scale; a whole
    batch run at the images' own scale while the option is ignored is not what was asked.
    """
    from ..models.checkpoint import ModelLoadError, load_model_config
    from .segment import unscaled_note

    try:
        config = load_model_config(model_dir)
    except ModelLoadError:
        return  # loading the model says what is wrong with it
    if unscaled_note(config, diameter):
        given = "0 (estimate)" if diameter == 0 else f"{diameter:g}"
        raise CommandError(
            f"--diameter {given}: the model {model_dir} has no object_diameter in its config.json (the "
            "nucleus diameter it was trained at), so images cannot be resampled to its scale; leave out "
            "--diameter to segment them at their own scale"
        )
