"""Draw the stain pictures of the docs: restaining draws, and models on an IHC slide.

- ``augment_restain.png``: the package's two microscope C samples, as stored and
  in five draws of the restaining augmentation (``p_restain`` = 1, nothing else).
- ``augment_render_he.png``: the package's fluorescence (A) and brightfield (B)
  samples, as stored and in four draws of the H&E rendering (``p_render_he`` = 1,
  nothing else), beside a microscope C sample as stored.
- ``ihc_segmented.png`` (with ``--models``): scikit-image's immunohistochemistry
  image (haematoxylin counterstain, DAB; colonic glands, CMMI, no known copyright
  restrictions) segmented by each model with the nucleus size estimated. No
  model here has seen it, and it has no expert masks: the picture and the counts
  are what it shows.
- ``ihc_haematoxylin_only.png`` (with ``--haematoxylin-only``): the same image, the
  bundled model's nuclei as the image is and with ``--haematoxylin-only`` (the
  network given the unmixed haematoxylin alone), and that haematoxylin.

Run: ``python scripts/make_stain_figures.py [--out docs/images] [--models DIR DIR --names A B]
[--haematoxylin-only]`` (``default`` is the bundled model).
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


def render_figure(out: Path) -> None:
    config = AugmentConfig.preset("none", patch_size=(160, 160), p_render_he=1.0)
    as_stored = AugmentConfig.preset("none", patch_size=(160, 160))
    rows = []
    for name in ("a_fluorescence_1", "a_fluorescence_2", "b_brightfield"):
        image, labels, _ = load_sample(name)
        stored = preview_augmentations(image, labels, n=1, config=as_stored, seed=3)[0][0]
        draws = preview_augmentations(image, labels, n=4, config=config, seed=3)
        tiles = [np.repeat(stored[..., None], 3, -1)] + [d for d, _ in draws]
        rows.append(np.concatenate([(np.clip(t, 0, 1) * 255).astype(np.uint8) for t in tiles], axis=1))
    c_image, c_labels, _ = load_sample("c_histology_1")
    c_crop = preview_augmentations(c_image, c_labels, n=1, config=as_stored, seed=3)[0][0]
    c_row = np.full_like(rows[0], 255)
    c_row[:, : c_crop.shape[1]] = (np.clip(c_crop, 0, 1) * 255).astype(np.uint8)
    rows.append(c_row)
    io.imsave(out / "augment_render_he.png", np.concatenate(rows, axis=0), check_contrast=False)


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


def haematoxylin_figure(out: Path) -> None:
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.inference.stains import haematoxylin_only

    image = data.immunohistochemistry()
    unmixed = haematoxylin_only(image)  # what `--haematoxylin-only` gives the network
    model, config = resolve_model(None, device="cpu")
    panels = []
    for name, seen in (("as it is", image), ("haematoxylin only", unmixed)):
        result = segment_image(model, config, seen, device="cpu")
        overlay = image.copy()
        overlay[find_boundaries(result.labels, mode="thick")] = (0, 255, 0)
        panels.append(overlay)
        print(f"bundled, {name}: {result.n_instances} nuclei")
    panels.append((unmixed * 255 + 0.5).astype(np.uint8))
    io.imsave(out / "ihc_haematoxylin_only.png", np.concatenate(panels, axis=1), check_contrast=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument(
        "--models", nargs="*", default=[], help="model directories ('default': the bundled one)"
    )
    parser.add_argument("--names", nargs="*", default=[], help="a name per model, for the printout")
    parser.add_argument(
        "--haematoxylin-only", action="store_true", help="also draw ihc_haematoxylin_only.png (bundled model)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    restain_figure(args.out)
    render_figure(args.out)
    if args.models:
        ihc_figure(args.models, args.names or args.models, args.out)
    if args.haematoxylin_only:
        haematoxylin_figure(args.out)


if __name__ == "__main__":
    main()
