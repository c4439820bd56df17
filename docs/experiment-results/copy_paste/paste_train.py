"""Step 25: train with nuclei pasted against other nuclei ("copy-paste"), to teach touching pairs.

Merged touching nuclei are the largest error (steps 11, 20, 21). This script runs
``napari-cellseg train`` with one change to the training stream: before the crop and
the augmentation, with probability ``P_PASTE``, about a tenth of an image's nuclei
(at least one) each get a copy of another nucleus of the same image (its pixels and
mask, flipped or turned at random) placed so that it overlaps its neighbour's rim by
5-25 % of their radii, as touching nuclei do. The pasted nucleus is a new instance, so
the targets draw a boundary between the two.

    python paste_train.py TRAIN_ARGUMENTS...     (P_PASTE=0.5 PASTE_SHARE=0.1 by default)
    python paste_train.py --preview PNG

The rest of the command is step 14's continuation recipe (``../dice_and_soups/run_dice.sh``
without ``--dice-weight``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
from scipy import ndimage as ndi

P_PASTE = float(os.environ.get("P_PASTE", 0.5))  # of the crops
SHARE = float(os.environ.get("PASTE_SHARE", 0.1))  # of an image's nuclei that get a pasted neighbour
MAX_PASTES = 30


def paste_touching(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """``(image, labels)`` with copies of nuclei pasted against other nuclei of the image."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) < 2:
        return image, labels
    image, out = image.copy(), labels.copy()
    boxes = ndi.find_objects(labels)
    next_id = int(labels.max()) + 1
    for _ in range(min(MAX_PASTES, 1 + rng.binomial(len(ids), SHARE))):
        source, target = (int(v) for v in rng.choice(ids, 2, replace=False))
        box = boxes[source - 1]
        mask, pixels = labels[box] == source, image[box]
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        mask, pixels = np.rot90(mask, turns), np.rot90(pixels, turns)
        if flip:
            mask, pixels = mask[::-1], pixels[::-1]
        target_mask = labels == target
        centre = np.array(ndi.center_of_mass(target_mask))
        radius = np.sqrt(mask.sum() / np.pi) + np.sqrt(target_mask.sum() / np.pi)
        angle = rng.uniform(0, 2 * np.pi)
        place = centre + radius * rng.uniform(0.75, 0.95) * np.array([np.sin(angle), np.cos(angle)])
        top = np.round(place - np.array(ndi.center_of_mass(mask))).astype(int)
        bottom = top + mask.shape
        if (top < 0).any() or (bottom > labels.shape).any():
            continue
        window = (slice(top[0], bottom[0]), slice(top[1], bottom[1]))
        image[window][mask] = pixels[mask]
        out[window][mask] = next_id
        next_id += 1
    return image, out


def install() -> None:
    """Patch the training stream (in this process: run with --workers 0)."""
    from napari_cellseg.training import data

    original = data.CropDataset.sample

    def sample(self, index):
        rng = np.random.default_rng([self.seed, int(index), 7])
        if rng.random() < P_PASTE:
            get = self.cache.get

            def pasted(image_id):
                image, labels, are_instances = get(image_id)
                if not are_instances:
                    return image, labels, are_instances
                return (*paste_touching(image, labels, rng), True)

            self.cache.get = pasted
            try:
                return original(self, index)
            finally:
                del self.cache.get
        return original(self, index)

    data.CropDataset.sample = sample


def preview(path: str) -> None:
    """Pasted nuclei on the C sample, outlined, for a look."""
    from napari_cellseg.inference.outlines import write_overlay
    from napari_cellseg.sample_data import load_sample

    image, labels, _ = load_sample("c_histology_1")
    pasted_image, pasted = paste_touching(image.astype(np.float32) / 255, labels, np.random.default_rng(0))
    print(f"{int(pasted.max() - labels.max())} nuclei pasted")
    write_overlay(path, (pasted_image * 255).astype(np.uint8), pasted)


if __name__ == "__main__":
    if sys.argv[1] == "--preview":
        preview(sys.argv[2])
        sys.exit(0)
    from napari_cellseg.cli import main

    install()
    sys.exit(main(["train", *sys.argv[1:]]))
