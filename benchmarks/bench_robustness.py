"""How the default model holds up on C images unlike its training set: scale, stain and scanner.

Other scanners and labs differ from the shared data mostly by magnification
(nucleus size in pixels) and by stain colour. This script imitates both on
the dev C images of a split (never the test images):

- **scale**: each image and its masks are resized by a factor (area averaging
  / nearest), then segmented three ways: at the image's own scale, with each
  image's diameter estimated (``diameter=0``), and with one diameter for all,
  the median of the resized masks' nuclei (what a user who measured would give);
- **stain**: the haematoxylin and eosin concentrations are scaled in HED space
  (``data.photometric.stain_jitter``), beyond the training augmentation's range;
- **other stains**: the images redrawn as other slides would look
  (``data.photometric.restain``): haematoxylin alone, haematoxylin-DAB
  immunohistochemistry (DAB around the masks' nuclei, and partly over them), brown nuclei, and grey.
  Restaining is also a training augmentation (``p_restain``), so these cases
  say what the model learnt from it, not how it fares on real IHC slides.
  Each is also segmented as haematoxylin only (``inference.stains``).
- **scanners**: the images JPEG-compressed, and sampled down and back up to
  their size (``data.photometric.jpeg_compress``, ``lower_resolution``): a
  scanner that records less detail, or software that saves lossy files.
  Both are training augmentations too (preset ``scanners``).

It prints pooled AP@0.5 and the DSB score per case. Run::

    OMP_NUM_THREADS=2 python benchmarks/bench_robustness.py \\
        --data ../shared/data/dsb2018-dev --split runs/split_C.csv [--model DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
from scipy import ndimage as ndi


def _resize(image: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    height, width = labels.shape
    size = (max(16, round(width * factor)), max(16, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation)
    return resized, cv2.resize(labels.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)


def _stained(image: np.ndarray, haematoxylin: float, eosin: float) -> np.ndarray:
    from napari_cellseg.data.photometric import stain_jitter

    rgb = image[..., :3].astype(np.float32) / 255.0
    out = stain_jitter(rgb, np.array([haematoxylin, eosin, 1.0]), np.zeros(3))
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _restained(
    image: np.ndarray, labels: np.ndarray, haematoxylin: float, eosin: float, dab: float, brown_nuclei: bool,
    dab_on_nuclei: float = 0.0,
) -> np.ndarray:  # fmt: skip
    from napari_cellseg.data.photometric import gaussian_blur, restain

    rgb = image[..., :3].astype(np.float32) / 255.0
    # Brown around the nuclei, kept 2 px off their outlines and blurred, so no mask edge shows.
    outside = ndi.binary_erosion(labels == 0, iterations=2).astype(np.float32)
    dab = dab * (dab_on_nuclei + (1.0 - dab_on_nuclei) * gaussian_blur(outside, 3.0))
    nuclear_dab = 0.0
    if brown_nuclei:  # the left half's nuclei brown, the right half's blue
        nuclear_dab = np.zeros(rgb.shape[:2], np.float32)
        nuclear_dab[:, : rgb.shape[1] // 2] = 1.0
    out = restain(rgb, haematoxylin, eosin, dab, nuclear_dab, percentiles=None)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _scanned(image: np.ndarray, resolution: float, quality: int | None) -> np.ndarray:
    from napari_cellseg.data.photometric import jpeg_compress, lower_resolution

    out = lower_resolution(image[..., :3].astype(np.float32) / 255.0, resolution)
    if quality is not None:
        out = jpeg_compress(out, quality)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


# (name, resolution kept, JPEG quality or None)
SCANNERS = (
    ("JPEG quality 40", 1.0, 40),
    ("JPEG quality 20", 1.0, 20),
    ("half the resolution", 0.5, None),
    ("a third of the resolution", 0.35, None),
    ("half the resolution, JPEG quality 40", 0.5, 40),
)

# (name, haematoxylin x, eosin x, DAB optical density outside the nuclei, brown nuclei[,
# share of that DAB over the nuclei too])
OTHER_STAINS = (
    ("haematoxylin only, pale (x0.5)", 0.5, 0.0, 0.0, False),
    ("haematoxylin-DAB (x0.5, DAB 0.8 outside the nuclei)", 0.5, 0.0, 0.8, False),
    ("haematoxylin-DAB, dark DAB (x0.4, DAB 1.5)", 0.4, 0.0, 1.5, False),
    ("brown nuclei in half the image", 1.0, 1.0, 0.0, True),
    (
        "haematoxylin-DAB, nuclei under DAB (x0.5, DAB 1.0, 40 % of it over the nuclei)",
        0.5,
        0.0,
        1.0,
        False,
        0.4,
    ),
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (e.g. dsb2018-dev)")
    parser.add_argument("--split", required=True, help="split CSV with dev rows of microscope C")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument(
        "--scales",
        type=float,
        nargs="*",
        default=[0.5, 0.75, 1.0, 1.5, 2.0],
        help="resize factors (none: skip the scale table)",
    )
    args = parser.parse_args()

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.photometric import luminance
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.scale import equivalent_diameters
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.inference.stains import haematoxylin_only
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    model, config = resolve_model(args.model, device="cpu")
    own_scale = dataclasses.replace(config, default_diameter=None)  # whatever the model's default
    dataset = CellDataset.open(args.data)
    ids = [i for i, _ in holdout_ids(args.split, dataset, "dev", "C")]
    pairs = [(dataset.load_image(i), dataset.load_reference_instances(i)) for i in ids]
    print(f"{len(ids)} dev C images; model trained at nucleus diameter {config.object_diameter:.1f} px")

    def score(cases, model_config=config, **options) -> str:
        start = time.perf_counter()
        metrics = []
        for image, gt, extra in cases:
            labels = segment_image(
                model, model_config, image, keep_probabilities=False, **options, **extra
            ).labels
            metrics.append(image_metrics(gt, labels))
        pooled = pool_metrics(metrics)
        return f"AP@0.5 {pooled.ap[0]:.3f} DSB {pooled.dsb_score:.3f} ({time.perf_counter() - start:.0f} s)"

    print(f"model default: diameter {config.default_diameter} (None: own scale, 0: estimated)")
    print("\n| scale | nucleus diameter (px) | own scale | diameter estimated | one measured diameter |")
    print("|---|---|---|---|---|")
    for factor in args.scales:
        resized = [_resize(image, gt, factor) for image, gt in pairs]
        true_diameter = float(np.median(np.concatenate([equivalent_diameters(g) for _, g in resized])))
        plain = [(image, gt, {}) for image, gt in resized]
        known = [(image, gt, {"diameter": true_diameter}) for image, gt in resized]
        print(
            f"| {factor:g} | {true_diameter:.1f} | {score(plain, own_scale)} | {score(plain, diameter=0)} "
            f"| {score(known)} |",
            flush=True,
        )

    print("\n| stain (haematoxylin x, eosin x) | model default |")
    print("|---|---|")
    for haematoxylin, eosin in ((1.0, 1.0), (0.6, 1.0), (1.5, 1.0), (1.0, 0.5), (1.0, 1.6), (0.6, 1.6)):
        cases = [(_stained(image, haematoxylin, eosin), gt, {}) for image, gt in pairs]
        print(f"| {haematoxylin:g}, {eosin:g} | {score(cases)} |", flush=True)

    print("\n| other stain | model default | haematoxylin only (`--haematoxylin-only`) |")
    print("|---|---|---|")
    for name, *stain in OTHER_STAINS:
        cases = [(_restained(image, gt, *stain), gt, {}) for image, gt in pairs]
        unmixed = [(haematoxylin_only(image), gt, extra) for image, gt, extra in cases]
        print(f"| {name} | {score(cases)} | {score(unmixed)} |", flush=True)
    grey = [(np.round(luminance(image)).astype(np.uint8), gt, {}) for image, gt in pairs]
    print(f"| grey (luminance) | {score(grey)} |", flush=True)

    print("\n| scanner | model default |")
    print("|---|---|")
    for name, resolution, quality in SCANNERS:
        cases = [(_scanned(image, resolution, quality), gt, {}) for image, gt in pairs]
        print(f"| {name} | {score(cases)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
