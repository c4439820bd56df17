"""Would more C training images help? A cross-validated check on the dev groups.

Giving the final model the dev images to train on is only worth it if images
from more slides improve the scores on slides the model has never seen. This
script measures that without touching test:

1. ``write`` splits the dev groups (slides) of SPLIT into K folds of about
   equal size. For fold k, ``fold_k.csv`` keeps fold k as dev and moves the
   other dev groups to train, so the model trains on them. Test is unchanged.
2. Train one model per fold with ``napari-cellseg train --split fold_k.csv``.
3. ``score`` scores each fold model (pass its ``last/`` directory: its best
   epoch was chosen on the held-out fold) and a reference model on the dev
   images the fold model did not train on. The nucleus size is estimated for
   every image, and both models use the reference model's watershed
   parameters. Pooled over the folds, every dev image is scored once::

    python scripts/dev_group_folds.py write --split runs/split_C.csv --folds 2 --out runs/folds
    python scripts/dev_group_folds.py score --data ../shared/data/dsb2018-dev \\
        --folds-dir runs/folds --models runs/fold1/last runs/fold2/last --reference default
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path


def fold_groups(groups: dict[str, int], folds: int) -> list[list[str]]:
    """Cut the groups (name -> image count), in name order, into ``folds`` runs of about equal image counts."""
    if folds < 2 or folds > len(groups):
        raise ValueError(f"--folds must be between 2 and the {len(groups)} dev groups, got {folds}")
    total = sum(groups.values())
    dealt: list[list[str]] = [[] for _ in range(folds)]
    seen = 0
    for name in sorted(groups):
        # the fold whose share of the images this group starts in
        k = min(folds - 1, seen * folds // total)
        dealt[k].append(name)
        seen += groups[name]
    if not all(dealt):
        raise ValueError(f"{folds} folds leave one empty: too few dev groups ({len(groups)})")
    return dealt


def write_folds(split: Path, folds: int, out: Path) -> list[Path]:
    from napari_cellseg.data.splitfile import read_split, write_split

    subsets = read_split(split)  # checks ids and subsets
    with open(split, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if "group" not in rows[0]:
        raise ValueError(f"{split}: expected a split CSV with a 'group' column")
    group_of = {row["id"].strip(): row["group"] for row in rows}
    microscopes = {row["id"].strip(): row.get("microscope", "") for row in rows}
    groups: dict[str, int] = {}
    for image_id, subset in subsets.items():
        if subset == "dev":
            groups[group_of[image_id]] = groups.get(group_of[image_id], 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, held_out in enumerate(fold_groups(groups, folds), start=1):
        kept = set(held_out)
        fold = {i: "train" if s == "dev" and group_of[i] not in kept else s for i, s in subsets.items()}
        path = write_split(out / f"fold_{k}.csv", fold, microscopes, group_of)
        n_dev = sum(groups[g] for g in held_out)
        print(f"{path}: {len(held_out)} dev groups ({n_dev} images) held out")
        paths.append(path)
    return paths


def score(data: str, folds_dir: Path, models: list[str], reference: str, microscope: str) -> None:
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference.predict import predict_probabilities
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.tune_watershed import tune_watershed
    from napari_cellseg.training.holdout import holdout_ids

    dataset = CellDataset.open(data)
    ref_model, ref_config = resolve_model(None if reference == "default" else reference, device="cpu")
    watershed = {k: [v] for k, v in ref_config.watershed.items()}  # a one-point grid
    pooled: dict[str, tuple[list, list]] = {"reference": ([], []), "fold model": ([], [])}
    print("| images | model | AP@0.5 | DSB score |\n|---|---|---|---|")
    for k, model_dir in enumerate(models, start=1):
        ids = [i for i, _ in holdout_ids(folds_dir / f"fold_{k}.csv", dataset, "dev", microscope)]
        truths = [dataset.load_reference_instances(i) for i in ids]
        fold_model = resolve_model(model_dir, device="cpu")
        for name, (model, config) in (("reference", (ref_model, ref_config)), ("fold model", fold_model)):
            config = dataclasses.replace(config, default_diameter=0.0)
            probabilities = [predict_probabilities(model, config, dataset.load_image(i)) for i in ids]
            row = tune_watershed(probabilities, truths, watershed)[1][0]
            print(f"| fold {k} ({len(ids)}) | {name} | {row['ap_50']:.3f} | {row['dsb_score']:.3f} |")
            pooled[name][0].extend(probabilities)
            pooled[name][1].extend(truths)
    for name, (probabilities, truths) in pooled.items():
        row = tune_watershed(probabilities, truths, watershed)[1][0]
        print(f"| all folds ({len(truths)}) | {name} | {row['ap_50']:.3f} | {row['dsb_score']:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write one split per fold")
    write.add_argument("--split", required=True, type=Path)
    write.add_argument("--folds", type=int, default=2)
    write.add_argument("--out", required=True, type=Path)
    scoring = commands.add_parser("score", help="score fold models against a reference")
    scoring.add_argument("--data", required=True)
    scoring.add_argument("--folds-dir", required=True, type=Path)
    scoring.add_argument("--models", required=True, nargs="+", help="one model directory per fold, in order")
    scoring.add_argument("--reference", default="default", help="model to compare with (default: bundled)")
    scoring.add_argument("--microscope", default="C")
    args = parser.parse_args()
    try:
        if args.command == "write":
            write_folds(args.split, args.folds, args.out)
        else:
            score(args.data, args.folds_dir, args.models, args.reference, args.microscope)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
