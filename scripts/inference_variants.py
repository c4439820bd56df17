"""Score inference-time variants of a model on held-out C images, without retraining.

Two ideas that need no training, each against the model as shipped:

- ``--ensemble DIR [DIR ...]``: average the class probabilities of several
  networks (the first model's config: normalisation, scale, watershed); with
  ``--tune`` the watershed is re-tuned on the averaged maps (default grid,
  starting from the first model's parameters).
- ``--stain reinhard|grey|haematoxylin``: change the colour of each image
  before the network: Reinhard colour transfer (each image's LAB mean and
  standard deviation set to the mean of the training C images'), plain grey,
  or the haematoxylin optical density alone (Ruifrok-Johnston unmixing).

The nucleus size is estimated as the shipped model does. Prints pooled AP@0.5
and DSB score, the touching pairs merged, and the per-group mean [min-max].
Run::

    python scripts/inference_variants.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv --stain none reinhard grey haematoxylin
    python scripts/inference_variants.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv --ensemble default runs/gpu_l5 runs/gpu_b8l4 runs/gpu_l4 --tune [--tta]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

STAINS = ("none", "reinhard", "grey", "haematoxylin")


def averaged_network(models):
    """One ``torch.nn.Module`` whose softmax is the mean of ``models``' softmax outputs."""
    import torch

    class ProbabilityAverage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(models)
            self.input_multiple = max(int(getattr(m, "input_multiple", 1)) for m in models)

        def forward(self, x):
            mean = sum(torch.softmax(m(x).float(), 1) for m in self.members) / len(self.members)
            return torch.log(mean.clamp_min(1e-6))  # softmax of this is ``mean`` again

    return ProbabilityAverage().eval()


def stain_transform(name: str, reference_images):
    """``image -> image`` for one of :data:`STAINS` (``reference_images``: RGB uint8, for Reinhard)."""
    from skimage import color

    from napari_cellseg.data.photometric import HED_FROM_RGB

    if name == "none":
        return lambda image: image
    if name == "grey":
        return lambda image: image[..., :3].mean(-1).astype(np.uint8)
    if name == "haematoxylin":

        def haematoxylin(image):
            density = -np.log(np.maximum(image[..., :3] / 255.0, 1e-3)) @ HED_FROM_RGB[:, 0]
            return (np.clip(np.exp(-density), 0, 1) * 255).astype(np.uint8)

        return haematoxylin
    stats = [color.rgb2lab(im[..., :3]).reshape(-1, 3) for im in reference_images]
    target_mean = np.mean([s.mean(0) for s in stats], 0)
    target_std = np.mean([s.std(0) for s in stats], 0)

    def reinhard(image):
        lab = color.rgb2lab(image[..., :3]).reshape(-1, 3)
        lab = (lab - lab.mean(0)) / np.maximum(lab.std(0), 1e-6) * target_std + target_mean
        rgb = color.lab2rgb(lab.reshape(*image.shape[:2], 3))
        return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)

    return reinhard


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--subset", default="dev", help="split subset to score (default dev)")
    parser.add_argument("--microscope", default="C")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--ensemble", nargs="+", help="model directories to average ('default': bundled)")
    parser.add_argument("--tune", action="store_true", help="re-tune the watershed on the ensemble")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (8 flips and turns)")
    parser.add_argument("--stain", nargs="+", choices=STAINS, default=["none"])
    args = parser.parse_args()

    from napari_cellseg.generators import run_to_end
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image, watershed_params
    from napari_cellseg.inference.tune_watershed import load_tuning_images, tune_watershed
    from napari_cellseg.training.holdout import iter_score_holdout

    dirs = args.ensemble or [args.model or "default"]
    loaded = [resolve_model(None if d == "default" else d, device="cpu") for d in dirs]
    config = dataclasses.replace(loaded[0][1], default_diameter=0.0)
    model = loaded[0][0] if len(loaded) == 1 else averaged_network([m for m, _ in loaded])
    params = watershed_params(config)
    if args.tune:
        _, images, truth = load_tuning_images(
            args.data, args.split, subset=args.subset, microscope=args.microscope
        )
        maps = [segment_image(model, config, im, params, tta=args.tta).probabilities for im in images]
        params, _ = tune_watershed(maps, truth, base=params)
        print(f"watershed tuned on {args.subset} {args.microscope}: {params.to_dict()}")
    reference = []
    if "reinhard" in args.stain:
        _, reference, _ = load_tuning_images(args.data, args.split, subset="train", microscope="C")
    for stain in args.stain:
        transform = stain_transform(stain, reference)
        start = time.perf_counter()

        def segment(image, transform=transform):
            return segment_image(
                model, config, transform(image), params, keep_probabilities=False, tta=args.tta
            ).labels

        scores = run_to_end(
            iter_score_holdout(segment, args.data, args.split, subset=args.subset, microscope=args.microscope)
        )
        mean, low, high = scores.group_stats()
        print(
            f"{'+'.join(map(str, dirs))} stain={stain} tta={args.tta} {args.subset} {args.microscope}: "
            f"AP@0.5 {scores.ap50:.3f} DSB {scores.dsb_score:.3f} merged {scores.merged_touching:.3f} "
            f"groups {mean:.3f} [{low:.3f}-{high:.3f}] ({time.perf_counter() - start:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
