"""``napari-cellseg demo``: the plugin on a microscope C sample.

With a display it opens napari with the plugin docked and the sample loaded.
Without one it segments the sample headless and writes a labels TIFF and an
overlay PNG into a folder it names.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_SAMPLE = "c_histology_1"


def register(subparsers) -> None:
    from .sample_data import list_samples

    parser = subparsers.add_parser(
        "demo",
        help="open napari with the plugin on a microscope C sample (or segment it headless)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="never open a window, even with a display")
    mode.add_argument("--gui", action="store_true", help="open napari (fails without a display)")
    keys = ", ".join(list_samples())  # the package's manifest: no image is read
    parser.add_argument(
        "--sample", default=DEFAULT_SAMPLE, help=f"sample key: {keys} (default {DEFAULT_SAMPLE})"
    )
    parser.add_argument("--out", default="demo-output", help="output folder for headless mode")
    parser.set_defaults(func=run)


def has_display() -> bool:
    """True where a window can be shown (an X or Wayland display on Linux)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run(args: argparse.Namespace) -> int:
    from .cli import CommandError, check_out_folder
    from .sample_data import list_samples

    check_out_folder(args.out)

    if args.sample not in list_samples():
        raise CommandError(f"unknown sample {args.sample!r}; choose from {', '.join(list_samples())}")
    if args.gui and not has_display():  # Qt would abort the process without a word of why
        raise CommandError("--gui needs a display (DISPLAY or WAYLAND_DISPLAY is not set); use --headless")
    if args.gui or (not args.headless and has_display()):
        return run_gui(args.sample)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file, not a folder")
    return run_headless(args.sample, out)


def run_gui(sample_key: str) -> int:
    import napari

    viewer = napari.Viewer(title="napari-cellseg demo")
    viewer.open_sample("napari-cellseg", sample_key)
    for name in ("Annotate", "Segment"):
        viewer.window.add_plugin_dock_widget("napari-cellseg", name)
    print(f"napari is open with sample {sample_key!r} and the napari-cellseg panels docked.")
    napari.run()
    return 0


def run_headless(sample_key: str, out: Path) -> int:
    from .sample_data import load_sample

    image, mask, sample = load_sample(sample_key)
    print(f"No display: running headless on sample {sample_key!r} ({sample.title}, image {image.shape}).")
    segment = _segmentation_or_none()
    if segment is None:
        print(
            "Segmentation is not available in this version yet: the sample was loaded "
            f"({mask.max()} nuclei in its expert mask) but not segmented. Nothing was written."
        )
        return 0
    start = time.perf_counter()
    labels = segment(image)
    elapsed = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    labels_path, overlay_path = write_outputs(out, sample_key, image, labels)
    print(f"Segmented {labels.max()} cells in {elapsed:.2f} s (expert mask: {mask.max()} nuclei).")
    print(f"Wrote {labels_path.name} and {overlay_path.name} into {out.resolve()}")
    return 0


def _segmentation_or_none():
    """The default model's segmentation function, or None where none is bundled yet."""
    try:
        from .inference.predict import load_default_model, segment_image
    except ImportError:
        return None
    try:
        model, config = load_default_model()
    except FileNotFoundError:
        return None

    def segment(image):
        return segment_image(model, config, image).labels

    return segment


def write_outputs(out: Path, key: str, image, labels) -> tuple[Path, Path]:
    from .inference.outlines import write_overlay
    from .io import write_tiff_layer

    labels_path = write_tiff_layer(out / f"{key}_labels.tif", labels, "labels", {"name": f"{key} cells"})
    return labels_path, write_overlay(out / f"{key}_overlay.png", image, labels)
