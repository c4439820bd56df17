"""The best a network can score when its logits are coarser than the image.

With ``l_a < l`` the decoder stops at stride ``2 ** (l - l_a)`` and its output is
upsampled bilinearly. A boundary two pixels thick between touching nuclei
about 19 px across is thinner than one stride-4 pixel. This script gives
that resolution limit a number: the expert's own 3-class targets (one-hot)
are average-pooled by each stride, upsampled back as the network's output
would be, and turned into cells by the watershed. A perfect network at that
stride would score exactly this. Run::

    python scripts/output_stride_ceiling.py --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv [--subset dev] [--microscope C]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

STRIDES = (1, 2, 4, 8)
# (interior threshold, foreground threshold, split height): the bundled model's, and plain ones
SETTINGS = ((0.5, 0.6, 1.5), (0.5, 0.5, 0.0), (0.6, 0.5, 1.0))


def pooled_then_upsampled(target: np.ndarray, stride: int) -> np.ndarray:
    """``(3, H, W)`` class probabilities of ``target`` seen through an output at ``stride``."""
    import torch
    import torch.nn.functional as F

    one_hot = torch.from_numpy(np.eye(3, dtype=np.float32)[target]).permute(2, 0, 1)[None]
    if stride == 1:
        return one_hot[0].numpy()
    coarse = F.avg_pool2d(one_hot, stride, ceil_mode=True)
    return F.interpolate(coarse, size=target.shape, mode="bilinear", align_corners=False)[0].numpy()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--subset", default="dev", help="split subset to score (default dev)")
    parser.add_argument("--microscope", default="C")
    parser.add_argument(
        "--thickness", type=int, default=2, help="boundary thickness of the targets (default 2)"
    )
    args = parser.parse_args()

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.inference.watershed import WatershedParams, instances_from_probabilities
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    dataset = CellDataset.open(args.data)
    ids = holdout_ids(args.split, dataset, args.subset, args.microscope)
    scores: dict[tuple, list] = {}
    for image_id, _group in ids:
        gt = dataset.load_reference_instances(image_id)
        target = instances_to_targets(gt, thickness=args.thickness)
        for stride in STRIDES:
            probabilities = pooled_then_upsampled(target, stride)
            for interior, foreground, split in SETTINGS:
                params = WatershedParams(
                    interior_threshold=interior,
                    foreground_threshold=foreground,
                    split_height=split,
                    min_size=32,
                )
                labels = instances_from_probabilities(probabilities, params)
                scores.setdefault((stride, interior, foreground, split), []).append(image_metrics(gt, labels))
    print(f"{len(ids)} {args.subset} {args.microscope} images, targets {args.thickness} px thick\n")
    print("| output stride | interior / foreground / split height | AP@0.5 | DSB score |\n|---|---|---|---|")
    for (stride, interior, foreground, split), per_image in scores.items():
        pooled = pool_metrics(per_image)
        print(
            f"| {stride} | {interior} / {foreground} / {split} | {pooled.ap[0]:.3f} | {pooled.dsb_score:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
