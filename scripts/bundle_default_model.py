"""Bundle a trained run as the package's default model, with a model card.

    .venv/bin/python scripts/bundle_default_model.py --run RUN_DIR \
        --data ../shared/data/dsb2018-dev --split split.csv

1. Copies the run's best model as fp16 safetensors + config.json into
   ``src/napari_cellseg/weights/default-model/`` (replacing what was there).
2. Chooses the watershed parameters on the dev images of microscope C
   (``napari-cellseg tune-watershed --rounds 3``) and writes them into that
   config; for a model that estimates nucleus sizes (whose estimate runs the
   watershed too), again with the new parameters until they stop changing.
3. Scores the model on the test images of C, the dev images of C, and, for the
   other microscopes, their (training) images; scores the classical baseline on
   the same test images in the same run; writes ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "napari_cellseg" / "weights" / "default-model"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True, help="model directory written by `napari-cellseg train`")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-other-microscopes", action="store_true")
    parser.add_argument(
        "--default-diameter",
        type=float,
        default=None,
        help="store this default_diameter (0: segment estimates each image's nucleus size); "
        "default: the run's own",
    )
    parser.add_argument(
        "--init-model-dir",
        default=None,
        help="where the model the run started from is now (a copy of the bundled model, for a run "
        "started with `--init-model default`, since bundling replaces it)",
    )
    parser.add_argument(
        "--provenance",
        default="",
        help="how the settings were chosen (Markdown, one sentence or more), written into the card",
    )
    args = parser.parse_args()

    from napari_cellseg.models.checkpoint import load_model_dir, save_model_dir
    from napari_cellseg.training.holdout import score_classical, score_model

    out = Path(args.out)
    model, config = load_model_dir(args.run, device="cpu")
    if args.default_diameter is not None:
        config = dataclasses.replace(config, default_diameter=args.default_diameter)
    if out.exists():
        shutil.rmtree(out)
    save_model_dir(out, model, config, half=True)
    print(f"wrote fp16 model to {out}")

    exe = Path(sys.executable).with_name("napari-cellseg")
    tune = [str(exe), "tune-watershed", "--model", str(out), "--data", args.data, "--split", args.split,
            "--subset", "dev", "--microscope", "C", "--device", args.device]  # fmt: skip
    start = time.perf_counter()
    subprocess.run([*tune, "--rounds", "3"], check=True)  # retuned while the size estimate's params change
    print(f"watershed tuned on dev C in {time.perf_counter() - start:.0f} s")

    scores = {}
    scores["test C"] = score_model(
        out, args.data, args.split, subset="test", microscope="C", device=args.device
    )
    scores["dev C"] = score_model(
        out, args.data, args.split, subset="dev", microscope="C", device=args.device
    )
    if not args.skip_other_microscopes:
        for microscope in ("A", "B"):
            scores[f"train {microscope} (seen in training)"] = score_model(
                out, args.data, args.split, subset="train", microscope=microscope, device=args.device
            )
    stain_scores, ihc_nuclei = score_other_stains(out, args.data, args.split, device=args.device)
    scores.update(stain_scores)
    classical = score_classical(args.data, args.split, subset="test", microscope="C")
    for name in [p.name for p in out.iterdir() if p.name.startswith("holdout_")]:
        (out / name).unlink()  # caches: not part of the bundle
    card = model_card(json.loads((out / "config.json").read_text()), scores, classical, args, out, ihc_nuclei)
    (out / "MODEL_CARD.md").write_text(card)
    print(card)
    return 0


def _pale_haematoxylin(image):
    """Haematoxylin at half its density and no eosin: a haematoxylin-only slide."""
    import numpy as np

    from napari_cellseg.data.photometric import restain

    rgb = restain(image[..., :3].astype(np.float32) / 255.0, 0.5, 0.0, percentiles=None)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _grey(image):
    import numpy as np

    from napari_cellseg.data.photometric import luminance

    return np.round(luminance(image)).astype(np.uint8)


def score_other_stains(model_dir: Path, data: str, split: str, device: str) -> tuple[dict, int]:
    """Dev C redrawn in other stains (no masks needed to draw them), and the IHC image count."""
    from skimage import data as skimage_data

    from napari_cellseg.generators import run_to_end
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.training.holdout import iter_score_holdout

    model, config = resolve_model(model_dir, device=device)
    scores = {}
    for name, render in (
        ("dev C, haematoxylin only (x0.5, no eosin)", _pale_haematoxylin),
        ("dev C in grey", _grey),
    ):

        def segment(image, render=render):
            return segment_image(model, config, render(image), keep_probabilities=False).labels

        scores[name] = run_to_end(
            iter_score_holdout(segment, data, split, subset="dev", microscope="C", name=name)
        )
    ihc = segment_image(model, config, skimage_data.immunohistochemistry(), keep_probabilities=False)
    return scores, ihc.n_instances


def _augment_line(train_config: dict) -> str:
    from napari_cellseg.data.augment import PRESETS, AugmentConfig

    preset = train_config.get("augment_preset")
    given = train_config.get("augment")
    config = AugmentConfig.preset(preset) if given is None else AugmentConfig.from_dict(dict(given))
    named = [
        p
        for p in PRESETS
        if dataclasses.replace(AugmentConfig.preset(p), patch_size=config.patch_size) == config
    ]
    name = f"preset `{named[0]}`" if named else "custom settings (see `train_config`)"
    steps = "crop, scale, flips, rotations, noise, contrast/gamma, blur, HED stain jitter"
    if config.p_restain or config.p_grey:
        steps += (
            f", restaining to other stains and haematoxylin-DAB ({config.p_restain:.0%} of colour crops)"
            f" and grey ({config.p_grey:.0%})"
        )
    return f"augmentation {name} ({steps})"


def _stain_limit(ihc_nuclei: int) -> str:
    return (
        f"- Other stains: it finds {ihc_nuclei} nuclei in "
        "scikit-image's immunohistochemistry image (haematoxylin-DAB, never seen), many in the stroma "
        "and some in the glands; most nuclei under the glands' dark DAB are missed. The rows "
        "'haematoxylin only' and 'in grey' above are the dev C images redrawn so. On slides whose DAB "
        "stains cytoplasm or membranes, `segment --haematoxylin-only` (the Segment panel's IHC box) gives "
        "the network the unmixed haematoxylin alone (its figures: docs/predicting.md); not for H&E or "
        "brown nuclei.\n"
    )


def _row(name, s) -> str:
    mean, low, high = s.group_stats()
    spread = f"{mean:.3f} [{low:.3f}-{high:.3f}]" if mean is not None else "-"
    merged = f"{s.merged_touching:.3f}" if s.merged_touching is not None else "-"
    return (
        f"| {name} | {s.n_images} | {s.n_cells} | {s.ap50:.3f} | {s.dsb_score:.3f} | "
        f"{s.ap50_image_mean:.3f} | {spread} | {merged} |"
    )


def total_minutes(run: str, training: dict) -> tuple[float, bool]:
    """Training time in minutes, and whether it is the whole run's: the best model's own config
    stops at the best epoch, the run's ``last/`` config has them all."""
    last = Path(run) / "last" / "config.json"
    if last.is_file():
        return float(
            (json.loads(last.read_text()).get("training") or training).get("elapsed_s", 0)
        ) / 60, True
    return float(training.get("elapsed_s", 0)) / 60, False


def _time_line(minutes: float, whole: bool, training: dict) -> str:
    if whole:
        return f"{minutes:.0f} min for all {training.get('epochs')} epochs"
    return (
        f"{minutes:.0f} min up to epoch {training.get('epoch')} of {training.get('epochs')} (the run's "
        "`last/` folder, with the whole run's time, was not at hand)"
    )


def _diameter(value) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "unknown"


def _default_diameter_text(value) -> str:
    if value == 0:
        return "without `--diameter`, each image's nucleus size is estimated and the image resampled to it"
    if value:
        return f"without `--diameter`, images are assumed to have {value:g} px nuclei"
    return "without `--diameter`, images are used at their own scale"


def _scale_limit(config: dict) -> str:
    if config.get("default_diameter") == 0:
        return (
            "The nucleus size is estimated from a first pass on a central crop; on images with very "
            "few nuclei or mixed sizes, give `--diameter` instead."
        )
    return (
        "Used at the images' own scale by default; for other magnifications pass the nucleus "
        "diameter (`--diameter`, 0 = estimate) so the image is rescaled."
    )


def started_from(train_config: dict, minutes: float, init_dir: str | None = None) -> str:
    """The card's line on an ``init_model`` run: what it started from and the time in all."""
    init = train_config.get("init_model")
    if not init:
        return ""
    path = Path(init_dir or init)
    if not (path / "config.json").is_file():
        print(f"warning: the model this run started from, {path}, is not on disk: the card cannot say "
              "what it was (give --init-model-dir)", file=sys.stderr)  # fmt: skip
        return (
            f"- Started from a trained model (`train --init-model {init}`), not on disk when this card "
            "was written: its budget is not stated here.\n"
        )
    init_config = json.loads((path / "config.json").read_text())
    init_training = init_config.get("training") or {}
    init_train_config = init_training.get("train_config") or {}
    init_minutes, _ = total_minutes(str(path), init_training)
    grown = (
        f" Its decoder was grown from `l_a` = {init_config.get('new_layers')} to "
        f"{train_config.get('new_layers')} (`grow_decoder`: its blocks kept, finer ones and a new "
        "output layer added)."
        if train_config.get("grow_decoder")
        else ""
    )
    if init_train_config.get("init_model"):  # a chain of runs: its recorded time is its own part
        origin = f"`{init}`, itself trained from an earlier model (see the settings line)"
        total = ""
    else:
        origin = (
            f"{init_training.get('epochs')} epochs x {init_training.get('steps_per_epoch')} steps from M2"
        )
        total = f"; with this run, {init_minutes + minutes:.0f} min of training in all"
    return (
        f"- Started from a trained model (`train --init-model`): {origin}, microscopes "
        f"{init_train_config.get('microscopes')}, lr {init_train_config.get('lr')}{total}.{grown}\n"
    )


def _targets_line(config: dict, train_config: dict) -> str:
    if train_config.get("target_profile", "hard") == "distance":
        return (
            "soft targets, distance profile (a pixel's interior share is its distance to its cell's "
            "edge over the cell's deepest distance; the rest is boundary)"
        )
    return f"boundary targets {config.get('target_thickness')} px thick"


def _m2_line(config: dict) -> str:
    """The model card's M2 line; a model trained from scratch used no pretrained weights."""
    if not config["m2"].get("pretrained", True):
        return (
            f"- M2: none: `{config['arch']}` stages with random initial weights "
            "(trained from scratch, no pretrained weights used)."
        )
    return f"- M2: `{config['m2']['name']}` (`{config['arch']}`, ImageNet EfficientNet-Lite0, Apache-2.0)."


def model_card(config: dict, scores: dict, classical, args, out: Path, ihc_nuclei: int) -> str:
    training = config.get("training") or {}
    train_config = training.get("train_config") or {}
    minutes, whole_run = total_minutes(args.run, training)
    size_mb = (out / "model.safetensors").stat().st_size / 1e6
    header = (
        "| images | n | cells | AP@0.5 | DSB score | mean AP@0.5 per image | "
        "AP@0.5 per group: mean [min-max] | touching pairs merged |\n|---|---|---|---|---|---|---|---|"
    )
    rows = "\n".join(_row(name, s) for name, s in scores.items())
    provenance = f"- Settings: {args.provenance.strip()}\n" if args.provenance.strip() else ""
    test = scores["test C"]
    goal_met = test.ap50 >= 0.80 and test.dsb_score >= 0.55
    goal = "reached" if goal_met else f"not reached (AP@0.5 {test.ap50:.3f}, DSB {test.dsb_score:.3f})"
    return f"""# Model card: napari-cellseg default model (microscope C)

**What it does**: segments nuclei in stained histology (H&E-like, RGB) images,
microscope C of the project, into instances: a 3-class network (background,
boundary, interior) followed by a marker-controlled watershed.

## Architecture and training
{_m2_line(config)}
- `l` = {config["transfer_layers"]} stages transferred, `l_a` = {config["new_layers"]} new decoder layers,
  `l_f` = {config["frozen_layers"]} frozen; decoder channels {config["decoder_channels"]}.
- Loss: `{config["loss"]}`, class weights {config["class_weights"]} (background / boundary / interior);
  {_targets_line(config, train_config)}.
{provenance}{started_from(train_config, minutes, args.init_model_dir)}- Data: `dsb2018-dev` (DSB 2018 stage 1, CC0), split `{Path(args.split).name}` (target C, grouped
  near-duplicates; split hash `{config.get("split_hash")}`); trained on the train rows of
  microscopes {train_config.get("microscopes")}, over-sampling {train_config.get("sample_weights")};
  dev = C images only.
- Budget: {training.get("epochs")} epochs x {training.get("steps_per_epoch")} steps x batch
  {training.get("batch_size")} of {train_config.get("patch_size")}x{train_config.get("patch_size")} crops,
  AdamW lr {train_config.get("lr")} ({train_config.get("scheduler")}), {_augment_line(train_config)}.
- Device: {training.get("device")} ({training.get("device_reason")}),
  {train_config.get("num_threads") or "automatic"} torch thread(s); training time
  {_time_line(minutes, whole_run, training)} (dev scored every
  {train_config.get("dev_every")}). Best epoch by dev AP@0.5: {training.get("best_epoch")}.
- Watershed parameters (chosen on dev C by `tune-watershed`): `{json.dumps(config.get("watershed"))}`.
- Object scale: trained at nucleus diameter {_diameter(config.get("object_diameter"))} px;
  {_default_diameter_text(config.get("default_diameter"))}.
- Stored as fp16 safetensors, {size_mb:.1f} MB.

## Figures
AP is TP / (TP + FP + FN) at IoU 0.5 (StarDist / Cellpose convention: IoU >= 0.5 is a match), pooled
over the images' objects; the DSB score averages it over IoU 0.50:0.05:0.95. Groups are the
split's near-duplicate groups (tiles of one field), so their spread shows how much the score
depends on which slides are tested.

{header}
{rows}
{_row("classical baseline (Otsu + distance watershed), test C", classical)}

The A and B rows are on images the model trained on (the split keeps every A and B image in
train, since dev and test come from C only): they show it still handles those microscopes,
not how it generalises.

## Known limits
- The project's goal on test C (AP@0.5 >= 0.80, DSB >= 0.55) is {goal}. The dominant error
  is touching nuclei merged into one (the last column). A training budget 3x larger, on a GPU,
  fitted the training slides better but not the dev slides (docs/experiments.md, step 10);
  one run from M2 on a GPU with the current augmentation, and a second run after it, land at
  0.63-0.66 on dev C, as every recipe since step 4 has (step 15), and so does a larger
  ImageNet M2, EfficientNet-Lite2 (0.65-0.67, step 17).
  Seeded with the expert's markers, this network's own foreground scores AP@0.5 0.845 on dev C
  (`scripts/error_ceilings.py`, step 11; the step-9 network 0.866): one marker per nucleus is
  what is missing, and thicker target boundaries did not
  give it; nor did a centre output beside the three classes, trained frozen or jointly at
  this project's budget (step 12), nor an offset-to-centre output trained with them from M2
  (step 18): for most merged pairs its offsets point both nuclei to one centre. Separating
  touching nuclei better needs the encoder to learn them; whether a GPU budget gets there is
  not measured.
- The test split holds few slides: the per-group spread above is wide.
{_stain_limit(ihc_nuclei)}- {_scale_limit(config)}
"""


if __name__ == "__main__":
    sys.exit(main())
