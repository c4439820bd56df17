"""Can a finer pass part the merged nuclei? (the mirror of ../split_merges/coarse_probe.py; experiments.md step 21)

The bundled model on the held-out C images twice: at the estimated nucleus size (*base*), and
zoomed in a further 1.3-2 (*fine*: the diameter given as the estimate over the zoom), where two
touching nuclei are drawn with more pixels between them. Each base object of at least ``k``
times the base objects' median area that holds two or more fine objects (each half inside it,
each at least a quarter of the median area, together ``min_cover`` of the object) is replaced
by them; the object's other pixels go to the nearest piece.

python zoom_in_probe.py DATA SPLIT [--subset dev] [--model DIR]   (default: the bundled model)
"""

import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "split_merges"))
from coarse_probe import score, zoomed_cases  # step 20's coarser pass: the same cases and scores
from merge_probe import held_out  # step 20's probe: the same arguments and images

ZOOMS = (1.3, 1.6, 2.0)


def combine(base: np.ndarray, fine: np.ndarray, k: float, min_cover: float) -> np.ndarray:
    """``base`` with each large object cut into the fine objects it holds."""
    out = base.copy()
    base_area = np.bincount(base.ravel(), minlength=int(base.max()) + 1)
    if base_area[1:].sum() == 0:
        return out
    median = np.median(base_area[1:][base_area[1:] > 0])
    fine_area = np.bincount(fine.ravel(), minlength=int(fine.max()) + 1)
    next_id = int(base.max()) + 1
    for obj in np.flatnonzero(base_area >= k * median):
        if obj == 0:
            continue
        inside = base == obj
        ids, counts = np.unique(fine[inside], return_counts=True)
        keep = (ids > 0) & (counts >= 0.5 * fine_area[ids]) & (counts >= 0.25 * median)
        pieces = ids[keep]
        if len(pieces) < 2 or counts[keep].sum() < min_cover * base_area[obj]:
            continue
        seeds = np.where(inside & np.isin(fine, pieces), fine, 0)
        grown = expand_labels(seeds, distance=max(base.shape)) * inside
        for piece in pieces:
            out[grown == piece] = next_id
            next_id += 1
    return out


def main() -> None:
    args, model, config, images = held_out(__doc__)
    cases = zoomed_cases(model, config, images, ZOOMS)
    print(f"{len(cases)} {args.subset} C images; base only: {score(cases, lambda base, fine: base)}")
    for zoom in ZOOMS:
        print(f"fine only, x{zoom}: {score(cases, lambda base, fine, z: fine[z], zoom)}", flush=True)
        for k in (1.3, 1.6, 2.0):
            for min_cover in (0.5, 0.7):
                rule = f"x{zoom}, base objects >= {k} x the median area, pieces cover >= {min_cover}"
                mended = score(
                    cases, lambda base, fine, z, *rest: combine(base, fine[z], *rest), zoom, k, min_cover
                )
                print(f"{rule}: {mended}", flush=True)


if __name__ == "__main__":
    main()
