"""Dev C, bundled model: split the large objects by their shape. Each object larger than `a` times
its image's median area (and, optionally, less convex than a solidity of `s`) is cut at the necks
of its own distance transform (h-maxima of height `h` px) (experiments.md step 23).

python big_objects_probe.py DATA SPLIT
"""

import itertools
import sys

import numpy as np
from outline_probe import dev_c_predictions  # this folder's script: the same dev C predictions
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.segmentation import watershed

from napari_cellseg.inference.watershed import split_at_necks
from napari_cellseg.metrics import dataset_metrics


def split_big(labels: np.ndarray, factor: float, height: float, solidity_max: float) -> np.ndarray:
    out = labels.copy()
    props = regionprops(labels)
    if not props:
        return out
    median = np.median([p.area for p in props])
    next_label = int(labels.max()) + 1
    for p in props:
        if p.area <= factor * median or (solidity_max < 1 and p.solidity > solidity_max):
            continue
        box = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in p.slice)
        cell = labels[box] == p.label
        markers = split_at_necks(cell.astype(np.int32), height)
        if len(np.unique(markers[markers > 0])) < 2:
            continue
        parts = watershed(-ndi.distance_transform_edt(cell), markers, mask=cell)
        window = out[box]  # a view: writes go to out
        for part in np.unique(parts[parts > 0])[1:]:
            window[parts == part] = next_label
            next_label += 1
    return out


def main() -> None:
    truths, preds, names = dev_c_predictions(*sys.argv[1:3])

    def score(labels) -> str:
        _, pooled = dataset_metrics(truths, labels, names=names)
        return f"AP@0.5 {pooled.ap[0]:.3f} DSB {pooled.dsb_score:.3f}"

    print(f"dev C as predicted: {score(preds)}")
    for a, h, s in itertools.product((1.5, 2.0, 3.0), (0.5, 1.0, 2.0), (1.0, 0.9)):
        print(f"area > {a}x median, h {h}, solidity < {s}: {score([split_big(x, a, h, s) for x in preds])}")


if __name__ == "__main__":
    main()
