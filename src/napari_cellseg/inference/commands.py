"""``napari-cellseg segment``, ``evaluate``, ``tune-watershed`` and ``export``.

Nothing heavy is imported at module level: each subcommand imports its work
when it runs, so ``napari-cellseg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add this package's subcommands to the ``napari-cellseg`` parser."""
    _register_segment(subparsers)
    _register_evaluate(subparsers)
    _register_tune_watershed(subparsers)
    _register_export(subparsers)


# --- evaluate -----------------------------------------------------------------


def _register_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted instance labels against ground truth",
        description=(
            "Match predicted and ground-truth label images by file stem (<id>.tif) and print "
            "AP@0.5, AP@0.75, DSB score, F1 and AJI per microscope and overall, pooled over "
            "objects and as means of per-image scores."
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
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from ..cli import CommandError
    from .evaluate import EvaluationError, evaluate_directories, format_table, read_microscopes

    _check_writable_file(args.out, "--out")
    manifest = args.manifest
    if manifest is None and (args.gt.parent / "manifest.csv").is_file():
        manifest = args.gt.parent / "manifest.csv"
    try:
        microscopes = read_microscopes(manifest) if manifest is not None else {}
        result = evaluate_directories(
            args.pred, args.gt, microscopes=microscopes, skip_missing=args.skip_missing
        )
    except EvaluationError as err:
        raise CommandError(str(err)) from None
    if result.missing_predictions:
        print(
            f"warning: skipped {len(result.missing_predictions)} ground-truth image(s) without "
            f"a prediction: {_listed(result.missing_predictions)}",
            file=sys.stderr,
        )
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
    source = f"microscopes from {manifest}" if manifest is not None else "no manifest: microscope '?'"
    print(f"{len(result.images)} image(s); {source}")
    print(format_table(result.groups), end="")
    if args.out is not None:
        _write_text(args.out, json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _listed(ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


# --- tune-watershed -------------------------------------------------------------


def _register_tune_watershed(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune-watershed",
        help="choose a model's watershed parameters on dev images",
        description=(
            "Predict the dev images with the model once, grid-search the watershed parameters "
            "on the predictions and write the best into the model's config.json (key "
            "'watershed'), with the scores they reached (metrics.watershed_tuned, shown by the GUI). "
            "The model's current parameters are scored too: config.json changes only when a grid "
            "point beats them."
        ),
    )
    parser.add_argument(
        "--model", required=True, type=Path, metavar="DIR",
        help="model directory ('default': the bundled model, with --dry-run only)",
    )  # fmt: skip
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="dataset folder")
    parser.add_argument(
        "--split",
        type=Path,
        metavar="CSV",
        help="split file (columns id, subset; see `napari-cellseg split`); default: every image",
    )
    parser.add_argument("--subset", default="dev", help="subset to tune on (default: dev)")
    parser.add_argument("--microscope", help="only images of this microscope (e.g. C)")
    parser.add_argument(
        "--score",
        default="dsb_score",
        choices=("dsb_score", "aji", "image_mean_dsb_score", "image_mean_aji"),
        help="pooled score to maximise (default: dsb_score)",
    )
    parser.add_argument(
        "--grid",
        metavar="JSON",
        help="parameter values to try, e.g. '{\"interior_threshold\": [0.5, 0.7]}', or a list of "
        "such grids searched one after the other, inline or in a .json/.yaml file; parameters a "
        "grid does not list keep the model's values (default: inference.tune_watershed.DEFAULT_GRID, "
        "threshold markers then peak markers, complete grids from the library defaults)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda:0... (default: auto)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="write every grid point's scores")
    parser.add_argument("--dry-run", action="store_true", help="print the best, leave config.json")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        metavar="N",
        help="a model that estimates each image's nucleus size runs the watershed in that estimate "
        "too: tune again with the new parameters stored until they stop changing, N rounds at most "
        "(default 3; other models and --dry-run take one)",
    )
    parser.set_defaults(func=_run_tune_watershed)


def _run_tune_watershed(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..config import ConfigError
    from .runtime import ModelNotFoundError, default_model_dir, resolve_model_dir
    from .tune_watershed import grid_points, load_tuning_images, row_scores, write_watershed_params

    # Every argument is checked before the (slow) predictions.
    if args.rounds < 1:
        raise CommandError(f"--rounds must be >= 1, got {args.rounds}")
    try:
        args.model = resolve_model_dir(args.model)
    except ModelNotFoundError as err:
        raise CommandError(str(err)) from None
    if not args.dry_run and args.model.resolve() == default_model_dir().resolve():
        raise CommandError(
            f"--model {args.model} is the bundled default model, which tune-watershed does not "
            "change; copy the folder and tune the copy, or add --dry-run"
        )
    grid = _read_grid(args.grid) if args.grid is not None else None
    try:
        # The default grids are complete searches from the library defaults; a user's grid
        # varies the parameters it lists and keeps the model's own for the others.
        grid_points(grid, _current_params(args.model) if grid is not None else None)
    except ValueError as err:
        raise CommandError(f"--grid: {err}") from None
    _check_writable_file(args.table, "--table")
    try:
        ids, images, ground_truth = load_tuning_images(
            args.data, args.split, subset=args.subset, microscope=args.microscope
        )
    except ValueError as err:  # DatasetError and friends name the file
        raise CommandError(str(err)) from None
    for round_number in range(1, args.rounds + 1):
        current = _current_params(args.model)
        tuned = _tune_round(args, grid, current, ids, images, ground_truth)
        if tuned is None:  # dry run
            return 0
        best, best_row = tuned
        if best == current:
            print(
                f"the model's current parameters score best ({args.score} {best_row[args.score]:.4f}); "
                "config.json unchanged"
            )
            break
        scores = {
            "subset": args.subset, "microscope": args.microscope, "images": len(ids), "score": args.score,
            **row_scores(best_row),
        }  # fmt: skip
        try:
            path = write_watershed_params(args.model, best, scores)
        except ConfigError as err:
            raise CommandError(str(err)) from None
        except OSError as err:
            raise CommandError(f"cannot write {args.model / 'config.json'}: {err.strerror or err}") from None
        print(f"wrote the watershed parameters into {path}")
        if _stored_config(args.model).get("default_diameter") != 0:
            break
        if round_number < args.rounds:
            print(f"round {round_number + 1}: the size estimate uses the new parameters, tuning again")
    return 0


def _read_grid(text: str):
    """``--grid`` as a dict or list of dicts: inline JSON, or a .json/.yaml file (as sweep takes)."""
    import json

    from ..cli import CommandError

    example = '{"min_size": [8, 16]}'
    source = "--grid"
    if text.lstrip().startswith(("{", "[")):
        try:
            grid = json.loads(text)
        except json.JSONDecodeError as err:
            raise CommandError(f"--grid is not valid JSON ({err})") from None
    else:
        path = Path(text)
        if not path.is_file():
            what = "no such file" if path.suffix.lower() in (".json", ".yaml", ".yml") else "neither"
            raise CommandError(
                f"--grid {text}: {what}; give inline JSON such as '{example}' or a .json/.yaml file"
            )
        source = f"--grid {path}"
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"{source}: cannot read it ({err})") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                grid = yaml.safe_load(content)
            except yaml.YAMLError as err:
                raise CommandError(f"{source}: not valid YAML ({err})") from None
        else:
            try:
                grid = json.loads(content)
            except json.JSONDecodeError as err:
                raise CommandError(f"{source}: not valid JSON ({err})") from None
    grids = grid if isinstance(grid, list) else [grid]
    if not grids or not all(
        isinstance(g, dict) and g and all(isinstance(v, list) for v in g.values()) for g in grids
    ):
        raise CommandError(
            f"{source} must be a JSON object of lists, e.g. {example}, or a list of such objects"
        )
    return grid


def _current_params(model_dir: Path):
    """The watershed parameters the model segments with now (library defaults when it stores none)."""
    from ..cli import CommandError
    from ..config import ConfigError
    from .watershed import WatershedParams

    stored = _stored_config(model_dir).get("watershed")
    try:
        return WatershedParams.from_dict(stored) if stored else WatershedParams()
    except (ConfigError, TypeError, ValueError) as err:
        raise CommandError(
            f"{model_dir / 'config.json'}: its 'watershed' parameters are invalid ({err})"
        ) from None


def _check_writable_file(path: Path | None, option: str) -> None:
    """Refuse an output file that is a folder before the work, not after it."""
    from ..cli import CommandError

    if path is not None and path.is_dir():
        raise CommandError(f"{option} {path} is a folder; give a .json file")


def _write_text(path: Path, text: str) -> None:
    from ..cli import CommandError
    from ..config import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as err:  # full disk, no permission...
        raise CommandError(f"cannot write {path}: {err.strerror or err}") from None


def _stored_config(model_dir: Path) -> dict:
    """The model's config.json as a dict; {} when it cannot be read (the round loop then stops)."""
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _tune_round(args: argparse.Namespace, grid, current, ids, images, ground_truth):
    """Predict, grid-search and report one round; the best params and their table row, or None after a dry run."""
    import json

    from ..cli import CommandError
    from .tune_watershed import tune_watershed

    probabilities = _predict_all(args.model, args.device, ids, images)
    print(f"grid search on {len(ids)} image(s)...")
    try:
        best, table = tune_watershed(
            probabilities, ground_truth, grid, base=current if grid is not None else None,
            current=current, score=args.score, callback=_print_every(20),
        )  # fmt: skip
    except ValueError as err:  # unknown or invalid grid parameters
        raise CommandError(str(err)) from None
    current_row = next(row for row in table if row["current"])
    print(f"the model's current parameters: {args.score} {current_row[args.score]:.4f}")
    print(f"best {args.score} {table[0][args.score]:.4f} with {best.to_dict()}")
    for row in table[:5]:
        print(
            "  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        )
    if args.table is not None:
        _write_text(args.table, json.dumps(table, indent=2) + "\n")
    if args.dry_run:
        print("dry run: config.json unchanged")
        return None
    return best, table[0]


def _predict_all(model_dir: Path, device: str, ids, images) -> list:
    from ..cli import CommandError

    # Wiring to the prediction package (inference.runtime / inference.predict).
    try:
        from .predict import predict_probabilities
        from .runtime import resolve_model
    except ImportError as err:
        raise CommandError(f"prediction is not available: {err}") from None
    try:
        model, config = resolve_model(model_dir, device=device)
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load the model in {model_dir}: {err}") from None
    probabilities = []
    for index, (image_id, image) in enumerate(zip(ids, images)):
        probabilities.append(predict_probabilities(model, config, image))
        print(f"predicted {index + 1}/{len(ids)}: {image_id}", flush=True)
    return probabilities


def _print_every(step: int):
    def report(progress) -> None:
        if progress.done % step == 0 or progress.done == progress.total:
            print(f"  {progress.done}/{progress.total} grid points, best so far {progress.best_score:.4f}")

    return report


# --- segment --------------------------------------------------------------------


def _register_segment(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment the nuclei of images (files or folders) into instance labels",
        description=(
            "Segment each image into <out>/<id>.tif instance labels (napari labels TIFF), "
            "tile by tile, with the model's watershed parameters. Existing outputs are kept "
            "unless --overwrite. A file that cannot be segmented is reported and the run goes "
            "on; the exit status is 1 if any failed."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders of images")
    parser.add_argument(
        "--model", type=Path, metavar="DIR", help="model directory (default: the bundled default model)"
    )
    parser.add_argument("--out", type=Path, default=Path("segmented"), metavar="DIR", help="output folder (default: ./segmented)")  # fmt: skip
    parser.add_argument("--tile", type=int, default=512, metavar="PX", help="largest tile, in network pixels (default 512)")  # fmt: skip
    parser.add_argument("--overlap", type=int, default=64, metavar="PX", help="tile overlap in network pixels (default 64)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, metavar="N", help="tiles per forward pass (default 8 on GPU, 2 on CPU)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda:0...")
    parser.add_argument(
        "--diameter", type=float, metavar="PX",
        help="nucleus diameter in pixels; images are rescaled to the model's training scale; 0 = estimate; "
             "default: the model's own choice (default_diameter in its config.json)",
    )  # fmt: skip
    parser.add_argument("--channel", type=int, metavar="N", help="channel to segment in multichannel images")
    parser.add_argument("--save-probabilities", action="store_true", help="also write <id>_probabilities.tif")
    parser.add_argument(
        "--measurements", action="store_true",
        help="write per-cell <id>.csv and measurements.csv (label, area, centroid, mean intensity)",
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
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
            "boundary and interior. The normalisation rule and the model config are embedded "
            "and written beside it as FILE.json."
        ),
    )
    parser.add_argument("--model", type=Path, metavar="DIR", help="model directory (default, or 'default': the bundled default model)")  # fmt: skip
    parser.add_argument(
        "--format", choices=("torchscript", "onnx"), dest="export_format",
        help="default: from the --out suffix (.pt, .pth, .ts: torchscript; .onnx: onnx)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing FILE and FILE.json")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from .runtime import ModelNotFoundError, resolve_model

    out, sidecar = args.out, args.out.with_suffix(".json")
    # Everything about --out is checked before the model is loaded and compiled.
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name such as {out / 'model.onnx'}")
    if out.exists() and not args.overwrite:
        raise CommandError(f"{out} exists; use --overwrite to replace it")
    if out.suffix.lower() == ".json":
        raise CommandError(f"--out {out}: .json is the sidecar's suffix; give a .pt or .onnx file")
    if sidecar.exists() and not args.overwrite:  # e.g. an earlier a.onnx export's a.json
        raise CommandError(
            f"{sidecar} exists (the FILE.json of an earlier export?); use --overwrite to replace it"
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
