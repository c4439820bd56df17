"""Screenshots of the Fine-tune and Segment panels for docs/guide.md.

Taken from the real plugin in a real viewer, under Xvfb::

    QT_API=pyqt6 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python scripts/guide_screenshots_part2.py docs/images [--model DIR]

Writes guide-finetune.png (a short run from the current model, the bundled
default, taken during its last epochs: on ``../shared/data/dsb2018-dev`` split
for microscope C when present, its split file in a temporary folder, else on the
package samples), guide-segment.png (the C sample segmented with one
click) and guide-segment-ihc.png (scikit-image's immunohistochemistry image
segmented with the haematoxylin-only box ticked). The Segment shot uses ``--model DIR`` when given (a model trained on
real C images looks like what users get), else the bundled default model,
else the model the Fine-tune shot just trained. Settings go to a temporary
XDG_CONFIG_HOME: the user's current model is left alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gui_shots import camera, new_viewer, sample_dataset, settle, shot

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018-dev"


def wait_until(condition, timeout: float = 900.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise RuntimeError(f"not done after {timeout} s")
        QApplication.processEvents()
        time.sleep(0.02)
    settle(0.5)


def finetune_shot(out: Path, tmp: Path) -> Path:
    """A short real run from the current model (128 px crops), shot during its last epochs.

    Going on from the bundled model is the quick adaptation the guide recommends, and its dev
    score is a real one after a few steps (a new network from M2 scores 0 for many epochs).
    """
    from napari_cellseg._qt._finetune_form import START_CURRENT

    viewer = new_viewer()
    viewer.open_sample("napari-cellseg", "c_histology_2")
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    form = panel.form
    form.start_combo.setCurrentText(START_CURRENT)
    if (SHARED_DEV / "manifest.csv").is_file():
        from napari_cellseg.data.dataset import CellDataset
        from napari_cellseg.data.split import split_dataset
        from napari_cellseg.data.splitfile import write_split

        root = SHARED_DEV
        write_split(tmp / "split.csv", split_dataset(CellDataset.open(root), target="C").subsets)
        form.split_edit.setText(str(tmp / "split.csv"))
    else:
        root = sample_dataset(tmp / "my-dataset")
    out_model = tmp / "my-dataset" / "models" / "model-first-run"
    form.dataset_edit.setText(str(root))
    form.out_edit.setText(str(out_model))
    form.patch_spin.setValue(128)
    form.batch_spin.setValue(4)
    form.epochs_spin.setValue(10)
    form.steps_spin.setValue(8)
    wait_until(lambda: panel.device_kind is not None)
    panel.start_button.click()
    wait_until(lambda: len(panel.plot.epochs) >= 7 and panel.busy)
    from qtpy.QtWidgets import QScrollArea

    bar = panel.findChild(QScrollArea).verticalScrollBar()  # the panel scrolls: show the run and its plot
    bar.setValue(bar.maximum())
    shot(viewer, out / "guide-finetune.png")
    wait_until(lambda: not panel.busy)
    print(panel.message.text())
    viewer.close()
    return out_model


def segment_shot(out: Path, model: Path) -> None:
    from napari_cellseg.app.current_model import set_current_model

    set_current_model(model)
    viewer = new_viewer()
    _, mask = viewer.open_sample("napari-cellseg", "c_histology_1")
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    panel.interior_check.setChecked(False)
    panel.segment_button.click()
    wait_until(lambda: not panel.busy)
    mask.visible = False
    camera(viewer).center = (128.0, 160.0)
    camera(viewer).zoom = 2.6
    shot(viewer, out / "guide-segment.png")
    print(panel.message.text())
    viewer.close()


def ihc_shot(out: Path) -> None:
    from skimage import data

    viewer = new_viewer()
    viewer.add_image(data.immunohistochemistry(), name="IHC slide", rgb=True)
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    panel.haematoxylin_check.setChecked(True)
    panel.segment_button.click()
    wait_until(lambda: not panel.busy)
    shot(viewer, out / "guide-segment-ihc.png")
    print(panel.message.text())
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", default="docs/images")
    parser.add_argument("--model", type=Path, help="model folder for the Segment shot")
    parser.add_argument(
        "--segment-only", action="store_true", help="only guide-segment.png (e.g. after a new default model)"
    )
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
        trained = None if args.segment_only else finetune_shot(out, tmp)
        from napari_cellseg.app.current_model import is_model_dir
        from napari_cellseg.inference.runtime import default_model_dir

        model = args.model or (default_model_dir() if is_model_dir(default_model_dir()) else trained)
        if model is None:
            parser.error("--segment-only needs --model or a bundled default model")
        if args.model is not None:  # shown by its folder name: give it a user-like one
            model = Path(
                shutil.copytree(args.model, tmp / "models" / "model-c-histology", dirs_exist_ok=True)
            )
        segment_shot(out, model)
        ihc_shot(out)


if __name__ == "__main__":
    main()
