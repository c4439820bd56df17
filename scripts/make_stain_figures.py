"""Draw the stain pictures of the docs: restaining draws, and models on an IHC slide.

- ``augment_restain.png``: the package's two microscope C samples, as stored and
  in five draws of the restaining augmentation (``p_restain`` = 1, nothing else).
- ``ihc_segmented.png`` (with ``--models``): scikit-image's immunohistochemistry
  image (haematoxylin counterstain, DAB; colonic glands, CMMI, no known copyright
  restrictions) segmented by each model with the nucleus size estimated. No
  model here has seen it, and it has no expert masks: the picture and the counts
  are what it shows.

Run: ``python scripts/make_stain_figures.py [--out docs/images] [--models DIR DIR --names A B]``
(``default`` is the bundled model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data, io
from skimage.segmentation import find_boundaries

from napari_cellseg.data.augment import AugmentConfig, preview_augmentations
from napari_cellseg.sample_data import load_sample


def restain_figure(out: Path) -> None:
    config = AugmentConfig.preset("none", patch_size=(160, 160), p_restain=1.0)
    rows = []
    for name in ("c_histology_1", "c_histology_2"):
        image, labels, _ = load_sample(name)
        draws = preview_augmentations(image, labels, n=5, config=config, seed=3)
        crops = [(np.clip(d, 0, 1) * 255).astype(np.uint8) for d, _ in draws]
        stored = preview_augmentations(
            image, labels, n=1, config=AugmentConfig.preset("none", patch_size=(160, 160)), seed=3
        )
        rows.append(np.concatenate([(stored[0][0] * 255).astype(np.uint8), *crops], axis=1))
    io.imsave(out / "augment_restain.png", np.concatenate(rows, axis=0), check_contrast=False)


def ihc_figure(models: list[str], names: list[str], out: Path) -> None:
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image

    image = data.immunohistochemistry()
    panels = [image]
    for model_dir, name in zip(models, names):
        model, config = resolve_model(None if model_dir == "default" else model_dir, device="cpu")
        result = segment_image(model, config, image, diameter=0, device="cpu")
        overlay = image.copy()
        overlay[find_boundaries(result.labels, mode="thick")] = (0, 255, 0)
        panels.append(overlay)
        print(f"{name}: {result.n_instances} nuclei (estimated diameter {result.diameter:.1f} px)")
    io.imsave(out / "ihc_segmented.png", np.concatenate(panels, axis=1), check_contrast=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument(
        "--models", nargs="*", default=[], help="model directories ('default': the bundled one)"
    )
    parser.add_argument("--names", nargs="*", default=[], help="a name per model, for the printout")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    restain_figure(args.out)
    if args.models:
        ihc_figure(args.models, args.names or args.models, args.out)


if __name__ == "__main__":
    main()
