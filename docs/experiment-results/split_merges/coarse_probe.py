"""Can a coarser pass give the large nuclei back? (experiments.md step 20)

The bundled model on the held-out C images twice: at the estimated nucleus size (*fine*), and
with the image zoomed a further 0.6-0.8 (*coarse*: the diameter given as the estimate over the
zoom), where a nucleus twice the median looks like a usual one. Each coarse object of at least
``k`` times the fine objects' median area that covers two or more fine objects (each half
inside it, their union at IoU >= ``min_iou`` with it) replaces them.

python coarse_probe.py DATA SPLIT [--subset dev] [--model DIR]   (default: the bundled model)
"""

import numpy as np
from merge_probe import held_out  # this folder's probe: the same arguments and images

from napari_cellseg.inference.segment import segment_image
from napari_cellseg.metrics import image_metrics, pool_metrics

ZOOMS = (0.6, 0.7, 0.8)


def combine(fine: np.ndarray, coarse: np.ndarray, k: float, min_iou: float) -> np.ndarray:
    """``fine`` with the pieces of each large coarse object replaced by that object."""
    out = fine.copy()
    fine_area = np.bincount(fine.ravel(), minlength=int(fine.max()) + 1)
    if fine_area[1:].sum() == 0:
        return out
    median = np.median(fine_area[1:][fine_area[1:] > 0])
    next_id = int(fine.max()) + 1
    for obj in range(1, int(coarse.max()) + 1):
        inside = coarse == obj
        if inside.sum() < k * median:
            continue
        ids, counts = np.unique(fine[inside], return_counts=True)
        pieces = ids[(ids > 0) & (counts >= 0.5 * fine_area[ids])]
        if len(pieces) < 2:
            continue
        union = np.isin(fine, pieces)
        if (union & inside).sum() / (union | inside).sum() < min_iou:
            continue
        out[union] = 0
        out[inside & (out == 0)] = next_id
        next_id += 1
    return out


def zoomed_cases(model, config, images, zooms) -> list:
    """``(truth, labels at the estimated size, {zoom: labels with the image zoomed a further zoom})``
    for each ``(image, truth)`` pair; shared with ``../dice_and_soups/zoom_in_probe.py``."""
    cases = []
    for image, truth in images:
        plain = segment_image(model, config, image, device="cpu")
        zoomed = {
            zoom: np.asarray(
                segment_image(model, config, image, device="cpu", diameter=plain.diameter / zoom).labels
            )
            for zoom in zooms
        }
        cases.append((truth, np.asarray(plain.labels), zoomed))
    return cases


def score(cases, pick, *params) -> str:
    """Pooled AP@0.5 and DSB of ``pick(plain, zoomed, *params)`` over ``cases``."""
    pooled = pool_metrics([image_metrics(gt, pick(plain, zoomed, *params)) for gt, plain, zoomed in cases])
    return f"AP@0.5 {pooled.ap[0]:.4f} DSB {pooled.dsb_score:.4f}"


def main() -> None:
    args, model, config, images = held_out(__doc__)
    cases = zoomed_cases(model, config, images, ZOOMS)
    print(f"{len(cases)} {args.subset} C images; fine only: {score(cases, lambda fine, coarse: fine)}")
    for zoom in ZOOMS:
        print(f"coarse only, x{zoom}: {score(cases, lambda fine, coarse, z: coarse[z], zoom)}", flush=True)
        for k in (1.5, 2.0, 3.0):
            for min_iou in (0.6, 0.75):
                rule = f"x{zoom}, coarse objects >= {k} x the median area, IoU >= {min_iou}"
                mended = score(
                    cases, lambda fine, coarse, z, *rest: combine(fine, coarse[z], *rest), zoom, k, min_iou
                )
                print(f"{rule}: {mended}", flush=True)


if __name__ == "__main__":
    main()
