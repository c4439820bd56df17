"""Screenshots of the Annotate, Dataset and Review panels for docs/guide.md.

Taken from the real plugin in a real viewer, under Xvfb::

    QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python scripts/guide_screenshots_part1.py docs/images

Writes guide-annotate.png, guide-annotate-touching.png, guide-dataset.png,
guide-review.png. The Dataset shot splits ``../shared/data/dsb2018-dev`` when
present (the split file goes to a temporary folder), else a dataset built from
the package samples.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _gui_shots import camera, new_viewer, settle, shot

REPO = Path(__file__).resolve().parents[1]
SHARED_DEV = REPO.parent / "shared" / "data" / "dsb2018-dev"


def wait(panel, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + timeout
    while panel.busy and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    if panel.busy:
        raise RuntimeError(f"{panel.title}: job still running after {timeout} s")
    settle(0.5)


def touching_pair(cells: np.ndarray) -> tuple[int, int]:
    """Two touching cells with a long contact, away from the image border."""
    from napari_cellseg.metrics import touching_pairs

    h, w = cells.shape
    best, best_score = None, -1.0
    for a, b in touching_pairs(cells):
        ys, xs = np.nonzero(np.isin(cells, [a, b]))
        margin = min(ys.min(), xs.min(), h - 1 - ys.max(), w - 1 - xs.max())
        box = cells[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        contact = np.count_nonzero((box[:, :-1] == a) & (box[:, 1:] == b)) + np.count_nonzero(
            (box[:-1, :] == a) & (box[1:, :] == b)
        )
        contact += np.count_nonzero((box[:, :-1] == b) & (box[:, 1:] == a))
        contact += np.count_nonzero((box[:-1, :] == b) & (box[1:, :] == a))
        score = contact + min(margin, 20)
        if score > best_score:
            best, best_score = (int(a), int(b)), score
    return best


def annotate_shots(out: Path) -> None:
    import imageio.v3 as iio

    viewer = new_viewer()
    image, mask = viewer.open_sample("napari-cellseg", "c_histology_1")
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    panel.dataset_edit.setText("/home/doctor/cellseg/my-annotations")
    panel.cells_combo.setCurrentText(mask.name)
    panel.to_annotation_button.click()
    wait(panel)
    mask.visible = False
    panel.paint_boundary_button.click()
    camera(viewer).center = (128.0, 160.0)
    camera(viewer).zoom = 2.5
    shot(viewer, out / "guide-annotate.png")

    # Two touching cells painted as one interior blob, before and after the button.
    annotation = viewer.layers[f"{image.name} boundary annotation"]
    cells = np.asarray(mask.data)
    a, b = touching_pair(cells)
    pair = np.isin(cells, [a, b])
    annotation.data_setitem(np.nonzero(pair), 2)
    ys, xs = np.nonzero(pair)
    camera(viewer).center = (float(ys.mean()), float(xs.mean()))
    camera(viewer).zoom = 10.0
    settle(0.8)
    before = viewer.screenshot(canvas_only=True)
    panel.touching_button.click()
    wait(panel)
    settle(0.8)
    after = viewer.screenshot(canvas_only=True)
    gap = np.full((before.shape[0], 16, before.shape[2]), 255, before.dtype)
    iio.imwrite(out / "guide-annotate-touching.png", np.concatenate([before, gap, after], axis=1))
    print(f"wrote {out / 'guide-annotate-touching.png'} ({panel.message.text()})")
    viewer.close()


def build_sample_dataset(root: Path) -> Path:
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import list_samples, load_sample

    for key in list_samples():
        image, mask, sample = load_sample(key)
        add_to_dataset(root, sample.id, image, mask, sample.microscope)
    return root


def dataset_shot(out: Path, tmp: Path) -> None:
    viewer = new_viewer()
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    root = SHARED_DEV if (SHARED_DEV / "manifest.csv").is_file() else build_sample_dataset(tmp / "samples")
    panel.dataset_edit.setText(str(root))
    panel.split_edit.setText(str(tmp / "split.csv"))
    panel.check_button.click()
    wait(panel)
    c_ids = [
        panel.id_combo.itemText(i)
        for i in range(panel.id_combo.count())
        if "[C]" in panel.id_combo.itemText(i)
    ]
    panel.id_combo.setCurrentText(c_ids[0])
    panel.preview_button.click()
    wait(panel)
    panel.split_button.click()
    wait(panel)
    shot(viewer, out / "guide-dataset.png")
    viewer.close()


def review_shot(out: Path) -> None:
    from napari_cellseg.inference.classical import classical_segmentation

    viewer = new_viewer()
    image, mask = viewer.open_sample("napari-cellseg", "c_histology_1")
    mask.name = "expert mask"
    viewer.add_labels(
        classical_segmentation(np.asarray(image.data)), name="classical prediction", opacity=0.4
    )
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    panel.gt_combo.setCurrentText("expert mask")
    panel.pred_combo.setCurrentText("classical prediction")
    panel.compare_button.click()
    wait(panel)
    mask.visible = False
    viewer.layers["classical prediction"].visible = False
    shot(viewer, out / "guide-review.png")
    viewer.close()


def main(out_dir: str = "docs/images") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        annotate_shots(out)
        dataset_shot(out, Path(tmp))
        review_shot(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
