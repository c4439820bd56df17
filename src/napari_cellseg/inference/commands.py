"""``napari-cellseg segment``, ``evaluate`` and ``export``; ``tune-watershed`` is in :mod:`.tune_watershed_cli`.

Nothing heavy is imported at module level: each subcommand imports its work
when it runs, so ``napari-cellseg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..models.device import DEVICE_HELP, device_option
from . import tune_watershed_cli
from .cli_files import check_writable_file, model_files, write_text


def register(subparsers) -> None:
    """Add this package's subcommands to the ``napari-cellseg`` parser."""
    _register_segment(subparsers)
    _register_evaluate(subparsers)
    tune_watershed_cli.register(subparsers)
    _register_export(subparsers)


# --- evaluate -----------------------------------------------------------------


def _register_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted instance labels against ground truth",
        description=(
            "Match predicted and ground-truth label images by file stem (<id>.tif) and print "
            "AP@0.5, AP@0.75, DSB score, F1 and AJI per microscope and overall, pooled over "
            "objects and as means of per-image scores. Either side may also be cell outlines "
            "(<id>.geojson from QuPath, <id>_rois.zip from Fiji: another tool's cells, or "
            "annotations drawn there). With --split and --subset, only that subset's images "
            "are scored (a split's test images). The other outputs segment writes beside its "
            "labels (<id>_overlay.png, <id>_probabilities.tif) are left out."
        ),
    )
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="predicted labels")
    parser.add_argument("--gt", required=True, type=Path, metavar="DIR", help="ground-truth labels")
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="CSV",
        help="id -> microscope (columns id, microscope); default: manifest.csv beside the gt folder",
    )
    parser.add_argument("--out", type=Path, metavar="JSON", help="write all metrics as JSON")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="evaluate the images that have a prediction instead of failing on missing ones",
    )
    parser.add_argument(
        "--split", type=Path, metavar="CSV",
        help="split file (napari-cellseg split): score only the images of --subset; the microscopes "
        "come from it when there is no manifest",
    )  # fmt: skip
    parser.add_argument(
        "--subset", choices=("train", "dev", "test"), help="with --split: the subset to score"
    )
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from ..cli import CommandError
    from .evaluate import (
        LABEL_SUFFIXES,
        EvaluationError,
        evaluate_directories,
        format_table,
        read_microscopes,
        split_subset_ids,
    )

    if (args.split is None) != (args.subset is None):
        given, needed = (
            ("--split", "--subset dev, test or train") if args.split else ("--subset", "--split CSV")
        )
        raise CommandError(f"{given} needs {needed}: the subset of that split file is scored")
    manifest = args.manifest
    # `--gt .` or `--gt ..`: the folder above is that of the absolute path, not Path(".").parent
    beside = Path(os.path.abspath(args.gt)).parent if args.gt.name in ("", "..") else args.gt.parent
    if manifest is None and (beside / "manifest.csv").is_file():
        manifest = beside / "manifest.csv"
    if manifest is None and args.split is not None:  # the split file has id and microscope too
        manifest = args.split
    read = [(manifest, "the manifest"), (args.split, "the --split file")] + [
        (f, "a label file") for d in {args.pred, args.gt} if d.is_dir() for f in d.iterdir() if f.suffix.lower() in LABEL_SUFFIXES
    ]  # fmt: skip
    check_writable_file(args.out, "--out", read)
    try:
        only = split_subset_ids(args.split, args.subset) if args.split is not None else None
        microscopes = read_microscopes(manifest) if manifest is not None else {}
        result = evaluate_directories(
            args.pred, args.gt, microscopes=microscopes, skip_missing=args.skip_missing, only=only
        )
    except EvaluationError as err:
        raise CommandError(str(err)) from None
    if result.missing_predictions:
        what = result.scored or "ground-truth image(s)"
        print(
            f"warning: skipped {len(result.missing_predictions)} {what} without "
            f"a prediction: {_listed(result.missing_predictions)}",
            file=sys.stderr,
        )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.unmatched_predictions:
        print(
            f"note: ignored {len(result.unmatched_predictions)} prediction(s) without ground "
            f"truth: {_listed(result.unmatched_predictions)}",
            file=sys.stderr,
        )
    unlisted = [m.name for m in result.images if m.name not in microscopes]
    if manifest is not None and unlisted:  # a wrong manifest would otherwise pass unnoticed
        print(
            f"note: {len(unlisted)} of {len(result.images)} images are not in {manifest.name} "
            f"(e.g. {unlisted[0]}); they are grouped as microscope '?'",
            file=sys.stderr,
        )
    if result.left_out:
        print(
            f"note: left out {len(result.left_out)} prediction(s) of images outside the {result.scored}: "
            f"{_listed(result.left_out)}",
            file=sys.stderr,
        )
    source = f"microscopes from {manifest}" if manifest is not None else "no manifest: microscope '?'"
    scored = f" (the {result.scored})" if result.scored else ""
    print(f"{len(result.images)} image(s){scored}; {source}")
    print(format_table(result.groups), end="")
    if args.out is not None:
        write_text(args.out, json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _listed(ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


# --- segment --------------------------------------------------------------------


def _register_segment(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment the nuclei of images (files or folders) into instance labels",
        description=(
            "Segment each image into <out>/<id>.tif instance labels (napari labels TIFF), "
            "tile by tile, with the model's watershed parameters. Existing outputs are kept "
            "unless --overwrite; outputs asked for since are drawn from the stored cells. A file that cannot be segmented is reported and the run goes "
            "on; the exit status is 1 if any failed."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders of images")
    parser.add_argument(
        "--model", type=Path, metavar="DIR", help="model directory (default: the bundled default model)"
    )
    parser.add_argument("--out", type=Path, default=Path("segmented"), metavar="DIR", help="output folder (default: ./segmented)")  # fmt: skip
    parser.add_argument("--tile", type=int, default=512, metavar="PX", help="largest tile, in network pixels")  # fmt: skip
    parser.add_argument("--overlap", type=int, default=64, metavar="PX", help="tile overlap in network pixels, at most half of --tile")  # fmt: skip
    parser.add_argument("--batch-size", type=int, metavar="N", help="tiles per forward pass (default 8 on GPU, 2 on CPU)")  # fmt: skip
    parser.add_argument(
        "--device", type=device_option, default="auto", metavar="DEVICE",
        help=DEVICE_HELP,
    )  # fmt: skip
    parser.add_argument(
        "--diameter", type=float, metavar="PX",
        help="nucleus diameter in pixels; images are rescaled to the model's training scale; 0 = estimate; "
             "default: the model's own choice (default_diameter in its config.json)",
    )  # fmt: skip
    parser.add_argument("--channel", type=int, metavar="N", help="channel to segment in multichannel images")
    parser.add_argument("--save-probabilities", action="store_true", help="also write <id>_probabilities.tif")
    parser.add_argument(
        "--measurements", action="store_true",
        help="write per-cell <id>.csv and measurements.csv, every cell in one table (measurements-all.csv "
        "if an image is called measurements): label, area, centroid, mean intensity",
    )  # fmt: skip
    parser.add_argument(
        "--geojson", action="store_true",
        help="also write <id>.geojson: the cells' outlines for QuPath (File > Import objects from file)",
    )  # fmt: skip
    parser.add_argument(
        "--overlays", action="store_true",
        help="also write <id>_overlay.png: the image with the cells outlined, to look through the results",
    )  # fmt: skip
    parser.add_argument(
        "--imagej-rois", action="store_true",
        help="also write <id>_rois.zip: the cells' outlines for Fiji's ROI Manager (drag it onto Fiji)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="CPU: compile the network once per tile shape (a few seconds), then about a third faster",
    )
    parser.add_argument(
        "--tta", action="store_true",
        help="test-time augmentation: average the 8 flips and quarter turns (8x slower, a little more accurate)",
    )  # fmt: skip
    parser.add_argument(
        "--haematoxylin-only", action="store_true",
        help="immunohistochemistry slides with brown DAB on cytoplasm or membranes: unmix the stains and "
        "segment the haematoxylin alone (not for nuclear DAB such as Ki-67)",
    )  # fmt: skip
    parser.add_argument(
        "--tta-zoom", action="store_true",
        help="average the network over the image zoomed by 0.8, 1 and 1.25 (3x slower, a little more accurate; "
        "with --tta 24x)",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="spread the images over a Dask cluster: a scheduler address, or 'local' for a local cluster",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, metavar="N", help="processes of --scheduler local (default: half the CPUs)")  # fmt: skip
    parser.add_argument(
        "--quiet", action="store_true",
        help="no progress: no bar on a terminal, no line per image in a log (errors and the summary stay)",
    )  # fmt: skip
    parser.set_defaults(func=_run_segment)


def _run_segment(args: argparse.Namespace) -> int:
    from .segment_cli import run_segment

    return run_segment(args)


# --- export ---------------------------------------------------------------------


def _register_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to TorchScript or ONNX for use outside the plugin",
        description=(
            "Write the model as TorchScript (.pt) or ONNX (.onnx): input float32 (N, 3, H, W) "
            "normalised images of any size, output (N, 3, H, W) probabilities of background, "
            "boundary and interior. The normalisation and object-scale rules and the model config "
            "are embedded and written beside it as a JSON file (cells.pt: cells.pt.json)."
        ),
    )
    parser.add_argument("--model", type=Path, metavar="DIR", help="model directory (default, or 'default': the bundled default model)")  # fmt: skip
    parser.add_argument(
        "--format", choices=("torchscript", "onnx"), dest="export_format",
        help="default: from the --out suffix (.pt, .pth, .ts: torchscript; .onnx: onnx)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FILE and its .json")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_file, same_file
    from .export_files import sidecar_path
    from .runtime import ModelNotFoundError, resolve_model, resolve_model_dir

    out, sidecar = args.out, sidecar_path(args.out)
    # Everything about --out is checked before the model is loaded and compiled.
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name such as {out / 'model.onnx'}")
    try:
        model_dir = resolve_model_dir(args.model)
    except ModelNotFoundError:
        model_dir = args.model  # refused when it is loaded, after the checks of --out and --opset
    read = model_files(model_dir) if model_dir is not None else []
    for source, what in read:  # cells.pt also writes cells.pt.json: neither may be the model's
        if same_file(out, source) or same_file(sidecar, source):
            raise CommandError(
                f"--out {out} would replace {what} {source} (the export writes {out.name} and {sidecar.name}); "
                "choose another name"
            )
    check_out_file(out, "--out")
    if out.exists() and not args.overwrite:
        raise CommandError(f"{out} exists; use --overwrite to replace it")
    if out.suffix.lower() == ".json":
        raise CommandError(f"--out {out}: .json is the sidecar's suffix; give a .pt or .onnx file")
    if sidecar.exists() and not args.overwrite:  # an earlier export's, its file since removed
        raise CommandError(
            f"{sidecar} exists (the .json of an earlier export?); use --overwrite to replace it"
        )
    from .export import SUFFIXES, ExportError, check_opset, export_model, format_of

    implied = format_of(out)
    fmt = args.export_format or implied
    if fmt is None:
        raise CommandError(
            f"--out {out}: cannot tell the format from its suffix; add --format torchscript or onnx"
        )
    if implied is not None and implied != fmt:
        raise CommandError(
            f"--format {fmt} but --out {out} is named for {implied}; "
            f"name it {out.with_suffix(SUFFIXES[fmt][0])} or use --format {implied}"
        )
    if fmt == "onnx":
        try:
            check_opset(args.opset)
        except ExportError as err:
            raise CommandError(str(err)) from None
    try:
        model, config = resolve_model(args.model, device="cpu")
    except (ModelNotFoundError, OSError, ValueError) as err:
        raise CommandError(str(err)) from None
    try:
        written = export_model(model, config, out, fmt, opset=args.opset)
    except ExportError as err:
        raise CommandError(str(err)) from None
    print(
        f"wrote {written.model} and {written.sidecar} (max difference to the model {written.max_error:.2e})"
    )
    return 0
