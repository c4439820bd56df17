"""``napari-cellseg tune-watershed``: choose a model's watershed parameters on dev images.

Registered by :mod:`.commands`; nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..models.device import DEVICE_HELP, device_option
from .cli_files import check_writable_file, model_files, write_text


def register(subparsers) -> None:
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
    parser.add_argument("--subset", help="subset of --split to tune on (default: dev)")
    parser.add_argument(  # --microscopes: train's spelling of this filter
        "--microscope", "--microscopes", dest="microscope", nargs="+", metavar="TAG",
        help="only images of this microscope (e.g. C); one tag",
    )  # fmt: skip
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
    parser.add_argument(
        "--device", type=device_option, default="auto", metavar="DEVICE",
        help=DEVICE_HELP,
    )  # fmt: skip
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
    from .runtime import ModelNotFoundError, default_model_dir, resolve_model_dir
    from .tune_watershed import grid_points, load_tuning_images, row_scores

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
    grid_file = (
        Path(args.grid) if args.grid is not None and not args.grid.lstrip().startswith(("{", "[")) else None
    )
    inputs = [(args.split, "the split file"), (args.data / "manifest.csv", "the dataset's manifest"), (grid_file, "the --grid file")]  # fmt: skip
    check_writable_file(args.table, "--table", [*model_files(args.model), *inputs])
    if args.microscope is not None:  # nargs="+": a second tag is refused by name, not as a stray path
        if len(args.microscope) > 1:
            raise CommandError(
                f"--microscope takes one tag, got {' '.join(args.microscope)}: tune on one microscope, "
                "or leave the option out to tune on every image"
            )
        args.microscope = args.microscope[0]
    if args.subset is not None and args.split is None:  # it would tune on every image unsaid
        raise CommandError("--subset chooses rows of a split: give --split too")
    subset = (args.subset or "dev") if args.split is not None else None
    try:
        ids, images, ground_truth = load_tuning_images(
            args.data, args.split, subset=subset or "dev", microscope=args.microscope
        )
    except ValueError as err:  # DatasetError and friends name the file
        raise CommandError(str(err)) from None
    # (params, their row scored under their own size estimate): each round's current parameters
    tried: list[tuple[Any, dict]] = []
    settled = False
    for round_number in range(1, args.rounds + 1):
        current = _current_params(args.model)
        tuned = _tune_round(args, grid, current, ids, images, ground_truth)
        if tuned is None:  # dry run
            return 0
        best, best_row, current_row = tuned
        tried.append((current, current_row))

        def scores_of(row: dict) -> dict:
            return {
                "subset": subset, "microscope": args.microscope, "images": len(ids), "score": args.score,
                "image_ids_sha256": _ids_digest(ids), **row_scores(row),
            }  # fmt: skip

        if best == current:
            if round_number > 1:  # what the last round stored was scored under the previous estimate
                _write(args, current, scores_of(current_row))
                print(
                    f"the parameters stored in round {round_number - 1} score best under their own size "
                    f"estimate ({args.score} {current_row[args.score]:.4f}); recorded that score"
                )
            elif _stale_record(args.model, scores_of(current_row)):
                _write(args, current, scores_of(current_row))  # e.g. the size estimate changed since
                print(
                    f"the model's current parameters score best ({args.score} {current_row[args.score]:.4f}); "
                    "their recorded score was measured before and differs: recorded this one"
                )
            else:
                print(
                    f"the model's current parameters score best ({args.score} {current_row[args.score]:.4f}); "
                    "config.json unchanged"
                )
            settled = True
            break
        if any(best == params for params, _row in tried):
            # the rounds would go back and forth between settings (A -> B -> A ...): keep the one
            # that scored best under its own size estimate, whatever the parity of --rounds
            keep, keep_row = max(tried, key=lambda item: item[1][args.score])
            path = _write(args, keep, scores_of(keep_row))
            print(
                f"the rounds cycle between {len(tried)} settings (each one's size estimate favours "
                f"another): kept {keep.to_dict()}, best under its own size estimate ({args.score} "
                f"{keep_row[args.score]:.4f}), in {path}"
            )
            settled = True
            break
        path = _write(args, best, scores_of(best_row))
        print(f"wrote the watershed parameters into {path}")
        if _stored_config(args.model).get("default_diameter") != 0:
            settled = True
            break
        if round_number < args.rounds:
            print(f"round {round_number + 1}: the size estimate uses the new parameters, tuning again")
    if not settled:
        print(
            f"warning: the parameters still changed after {args.rounds} round(s) (--rounds): those "
            f"written were scored under the previous parameters' size estimate ({args.score} "
            f"{best_row[args.score]:.4f}); run tune-watershed again, or with more --rounds, to settle them",
            file=sys.stderr,
        )
    return 0


def _write(args: argparse.Namespace, params, scores: dict) -> Path:
    from ..cli import CommandError
    from ..config import ConfigError
    from .tune_watershed import write_watershed_params

    try:
        return write_watershed_params(args.model, params, scores)
    except ConfigError as err:
        raise CommandError(str(err)) from None
    except OSError as err:
        raise CommandError(f"cannot write {args.model / 'config.json'}: {err.strerror or err}") from None


def _read_grid(text: str):
    """``--grid`` as a dict or list of dicts: inline JSON, or a .json/.yaml file (as sweep takes)."""
    import json

    from ..cli import CommandError
    from ..config import ConfigError, read_json_or_yaml

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
            grid = read_json_or_yaml(path)
        except ConfigError as err:
            raise CommandError(f"--grid {err}") from None
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


def _stale_record(model_dir: Path, scores: dict) -> bool:
    """Whether config.json records a tuning on these same images whose scores differ from ``scores``."""
    from ..models.checkpoint import TUNED_WATERSHED_METRICS

    metrics = _stored_config(model_dir).get("metrics")
    record = metrics.get(TUNED_WATERSHED_METRICS) if isinstance(metrics, dict) else None
    if not isinstance(record, dict):
        return False
    keys = ["subset", "microscope", "images", "score"]
    if "image_ids_sha256" in record:  # recorded since 2026-11-28: the very images, not only their count
        keys.append("image_ids_sha256")
    same_images = all(record.get(key) == scores[key] for key in keys)
    return same_images and any(
        not isinstance(record.get(key), (int, float)) or abs(record[key] - value) > 1e-9
        for key, value in scores.items()
        if isinstance(value, float)
    )


def _ids_digest(ids) -> str:
    """SHA-256 of the sorted image ids tuned on: tells two sets of as many images apart."""
    import hashlib

    return hashlib.sha256("".join(f"{i}\n" for i in sorted(ids)).encode("utf-8")).hexdigest()


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
        write_text(args.table, json.dumps(table, indent=2) + "\n")
    if args.dry_run:
        print("dry run: config.json unchanged")
        return None
    return best, table[0], current_row


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
