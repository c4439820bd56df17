"""Which expert cells the model splits: their size and elongation against the other cells'.

python split_shapes.py DATA SPLIT [MODEL]   (default: the bundled model; dev C, nucleus size estimated)
"""

import sys

import numpy as np
from skimage.measure import regionprops

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.runtime import resolve_model
from napari_cellseg.inference.segment import segment_image
from napari_cellseg.instance_errors import error_maps
from napari_cellseg.training.holdout import holdout_ids

data, split = sys.argv[1:3]
dataset = CellDataset.open(data)
model, config = resolve_model(sys.argv[3] if len(sys.argv) > 3 else None, device="cpu")
area, elongation, is_split = [], [], []
for image_id, _ in holdout_ids(split, dataset, "dev", "C"):
    gt = dataset.load_reference_instances(image_id)
    errors = error_maps(gt, segment_image(model, config, dataset.load_image(image_id), device="cpu").labels)
    cells = regionprops(gt)
    median = np.median([c.area for c in cells])
    for c in cells:
        area.append(c.area / median)
        elongation.append(c.axis_major_length / max(c.axis_minor_length, 1.0))
        is_split.append(c.label in errors["split_ids"])
area, elongation, is_split = np.array(area), np.array(elongation), np.array(is_split)


def summary(values: np.ndarray) -> str:
    low, high = np.percentile(values, [25, 75])
    return f"median {np.median(values):.2f}, quartiles {low:.2f}-{high:.2f}"


for name, chosen in (("split cells", is_split), ("other cells", ~is_split)):
    print(f"{name} ({chosen.sum()}): area / the image's median {summary(area[chosen])}; "
          f"elongation (major / minor axis) {summary(elongation[chosen])}")  # fmt: skip
for name, group in (("area >= 2x the median", area >= 2), ("elongation >= 2.5", elongation >= 2.5)):
    print(f"share split among cells with {name}: {is_split[group].mean():.3f} ({is_split[group].sum()} of "
          f"{group.sum()}); among the rest: {is_split[~group].mean():.3f}")  # fmt: skip
