"""Shared by the screenshot scripts (and the GUI benchmark): a viewer, settling, shots."""

from __future__ import annotations

import time
from pathlib import Path


def settle(seconds: float = 0.5) -> None:
    """Let Qt process events for ``seconds`` (draws, queued signals)."""
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def new_viewer():
    import napari

    viewer = napari.Viewer(title="napari-cellseg")
    viewer.window._qt_window.resize(1560, 960)
    return viewer


def shot(viewer, path: Path) -> None:
    settle(0.8)
    viewer.window.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}")


def camera(viewer):
    scene = getattr(viewer, "scene", None)  # napari >= 0.9; viewer.camera before
    return scene.camera if scene is not None else viewer.camera


def sample_dataset(root: Path) -> Path:
    """The package samples as a dataset with ``split.csv``: the second C sample is dev."""
    from napari_cellseg.data.splitfile import write_split
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import list_samples, load_sample

    subsets = {}
    for key in list_samples():
        image, mask, sample = load_sample(key)
        add_to_dataset(root, sample.id, image, mask, sample.microscope)
        subsets[sample.id] = "dev" if key == "c_histology_2" else "train"
    write_split(root / "split.csv", subsets)
    return root
