"""Draw the pictures of docs/segmenting.md (watershed parameters, error maps).

The probabilities are made from the expert mask of a package sample (microscope
C) by ``inference.synthetic.probabilities_from_instances`` (blurred, noisy
logits), so the pictures show what each parameter does without a trained model.

Run: ``python scripts/make_segmenting_figures.py [--out docs/images]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage.segmentation import find_boundaries

from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.watershed import (
    WatershedParams,
    elevation_from_probabilities,
    foreground_mask,
    instances_from_probabilities,
    markers_from_probabilities,
)
from napari_cellseg.metrics import error_maps, image_metrics
from napari_cellseg.sample_data import load_sample

SAMPLE = "c_histology_1"
CROP = (slice(0, 176), slice(0, 208))  # the dense part, so that the panels stay readable


def save(fig, out: Path, dpi: int, colours: int | None = 256) -> None:
    """Save as an optimised PNG, by default in 256 colours (a fraction of the size)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    image = Image.open(buffer).convert("RGB")
    (image.quantize(colours) if colours else image).save(out, optimize=True)


def overlay(image: np.ndarray, labels: np.ndarray, colour=(1.0, 0.9, 0.0)) -> np.ndarray:
    """RGB float image with the outlines of ``labels`` drawn in ``colour``."""
    rgb = image.astype(np.float32) / 255.0
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = rgb.copy()
    rgb[find_boundaries(labels, mode="inner")] = colour
    return rgb


def scored(gt: np.ndarray, labels: np.ndarray) -> str:
    m = image_metrics(gt, labels)
    return f"{int(labels.max())} cells, AP@0.5 {m.at('ap', 0.5):.2f}, DSB {m.dsb_score:.2f}"


def sweep(ax_row, image, gt, probabilities, name: str, values, base: WatershedParams) -> None:
    for ax, value in zip(ax_row, values):
        params = WatershedParams.from_dict({**base.to_dict(), name: value})
        labels = instances_from_probabilities(probabilities, params)
        ax.imshow(overlay(image, labels))
        ax.set_title(f"{name} = {value}\n{scored(gt, labels)}", fontsize=9)
        ax.axis("off")


def pipeline_figure(image, gt, probabilities, out: Path) -> None:
    params = WatershedParams()
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    classes = np.stack([probabilities[1], probabilities[2], probabilities[0] * 0.3], axis=-1)
    panels = [
        (overlay(image, gt, (0.0, 1.0, 0.3)), "image + expert outlines"),
        (np.clip(classes, 0, 1), "probabilities (R boundary, G interior)"),
        (elevation_from_probabilities(probabilities, params), "elevation P(bg) + w P(boundary)"),
        (markers_from_probabilities(probabilities, params) > 0, "markers P(interior) >= 0.6"),
        (overlay(image, instances_from_probabilities(probabilities, params)), "watershed (defaults)"),
    ]
    for ax, (data, title) in zip(axes, panels):
        ax.imshow(data, cmap="magma" if data.ndim == 2 and data.dtype != bool else "gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    mask = foreground_mask(probabilities, params)
    axes[3].contour(mask, levels=[0.5], colors="cyan", linewidths=0.5)
    fig.tight_layout()
    save(fig, out, dpi=80)


def parameters_figure(image, gt, probabilities, out: Path) -> None:
    rows = [
        ("interior_threshold", (0.3, 0.5, 0.7, 0.9), WatershedParams()),
        ("foreground_threshold", (0.2, 0.5, 0.8, 0.95), WatershedParams()),
        ("boundary_weight", (0.0, 1.0, 3.0, 10.0), WatershedParams(interior_threshold=0.8)),
        ("min_size", (0, 16, 64, 128), WatershedParams()),
        ("compactness", (0.0, 0.01, 0.1, 1.0), WatershedParams()),
        ("marker_smoothing", (0.0, 1.0, 2.0, 4.0), WatershedParams()),
        # At a low interior threshold touching interiors merge (row 1): splitting at necks parts them.
        ("split_height", (0.0, 0.5, 1.0, 2.0), WatershedParams(interior_threshold=0.3)),
    ]
    image, gt, probabilities = image[CROP], gt[CROP], probabilities[(slice(None), *CROP)]
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 2.9 * len(rows)))
    for ax_row, (name, values, base) in zip(axes, rows):
        sweep(ax_row, image, gt, probabilities, name, values, base)
    fig.tight_layout()
    save(fig, out, dpi=60)


def errors_figure(image, gt, out: Path) -> None:
    # Noisier probabilities than the other figures, so that every error class shows up.
    probabilities = probabilities_from_instances(gt, noise=1.0, seed=1)
    labels = instances_from_probabilities(probabilities, WatershedParams(interior_threshold=0.5))
    # The watershed gives merges and splits; add misses and spurious cells by hand.
    for label in (5, 20, 40):
        labels[labels == label] = 0
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    for row, col in ((60, 250), (150, 200)):
        labels[(yy - row) ** 2 + (xx - col) ** 2 < 64] = labels.max() + 1
    errors = error_maps(gt, labels)
    rgb = overlay(image, labels, (1.0, 1.0, 1.0))
    legend = []
    for key, colour in (
        ("false_positive", (1.0, 0.2, 0.2)),
        ("false_negative", (0.2, 0.5, 1.0)),
        ("split", (1.0, 0.9, 0.0)),
        ("merged", (1.0, 0.3, 1.0)),
    ):
        rgb[find_boundaries(errors[key], mode="thick")] = colour
        legend.append(f"{key} {len(errors[key + '_ids'])}")
    fig, ax = plt.subplots(figsize=(6.5, 5.6))
    ax.imshow(rgb)
    ax.set_title(
        "error_maps: red FP, blue FN, yellow split (gt), magenta merged\n" + ", ".join(legend), fontsize=9
    )
    ax.axis("off")
    fig.tight_layout()
    save(fig, out, dpi=90, colours=None)  # rare outline colours would not survive 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    image, gt, _ = load_sample(SAMPLE)
    probabilities = probabilities_from_instances(gt, seed=0)
    pipeline_figure(image, gt, probabilities, args.out / "segmenting_pipeline.png")
    parameters_figure(image, gt, probabilities, args.out / "segmenting_parameters.png")
    errors_figure(image, gt, args.out / "segmenting_errors.png")
    print(f"wrote 3 figures to {args.out}")


if __name__ == "__main__":
    main()
