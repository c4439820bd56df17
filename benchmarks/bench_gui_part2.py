"""How fast the Segment and Fine-tune panels answer, in a real viewer.

Prints, as medians of several runs:

- click-to-instance-layer time of "Segment microscope C image" on a
  1024x1024 RGB image with a model of the default architecture (the bundled
  default model when shipped, else EfficientNet-Lite0 with ``l=4, l_a=4`` and
  random new layers, saved as a model folder): the first click and the next
  ones. The panel loads the model in the background when it opens; the first
  click comes right after that, or ``--open-wait`` seconds later (a user who
  looks at the image first);
- slider-to-update latency: moving a watershed slider until the labels
  layer shows the new cells (60 ms debounce included), and the GUI-thread
  part of it (the undoable layer update);
- how long napari is unresponsive while a run trains: the largest gap
  between the ticks of a 50 ms QTimer (0 would be perfect; 50 ms is one tick)
  over ``--train-seconds`` of training, an epoch end with dev scoring included.

Run under Xvfb (napari needs OpenGL)::

    QT_API=pyqt6 xvfb-run -a .venv/bin/python benchmarks/bench_gui_part2.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _gui_shots import sample_dataset

os.environ.setdefault("QT_API", "pyqt6")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def process_events_until(condition, timeout: float = 600.0) -> float:
    """Run the Qt event loop until ``condition()``; return the seconds it took."""
    from qtpy.QtWidgets import QApplication

    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"not done after {timeout} s")
        QApplication.processEvents()
        time.sleep(0.001)
    return time.perf_counter() - start


def model_of_default_architecture(tmp: Path) -> Path:
    from napari_cellseg.app.current_model import is_model_dir
    from napari_cellseg.inference.runtime import default_model_dir

    if is_model_dir(default_model_dir()):
        return default_model_dir()
    from napari_cellseg.models.checkpoint import ModelConfig, save_model_dir
    from napari_cellseg.models.surgery import build_model

    model = build_model(m2="default", transfer_layers=4, new_layers=4)
    return save_model_dir(tmp / "default-architecture", model.eval(), ModelConfig.for_model(model))


def test_image() -> np.ndarray:
    """1024x1024 RGB H&E, tiled from the C sample."""
    from napari_cellseg.sample_data import load_sample

    image, _, _ = load_sample("c_histology_1")
    return np.tile(image, (4, 4, 1))[:1024, :1024]


def bench_segment(viewer, repeats: int, slider_moves: int, open_wait: float = 0.0) -> None:
    image = viewer.add_image(test_image(), name="[C] 1024", rgb=True, metadata={"microscope": "C"})
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    if open_wait:  # a user looks at the image before clicking: the panel's warm-up runs meanwhile
        start = time.perf_counter()
        process_events_until(lambda: time.perf_counter() - start > open_wait)
    times = []
    for _ in range(repeats):
        if "[C] 1024 segmented cells" in viewer.layers:
            viewer.layers.remove("[C] 1024 segmented cells")
        panel.segment(image)
        times.append(
            process_events_until(lambda: not panel.busy and "[C] 1024 segmented cells" in viewer.layers)
        )
    warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
    cells = viewer.layers["[C] 1024 segmented cells"]
    when = f"{open_wait:.0f} s after opening the panel" if open_wait else "right after opening the panel"
    print(f"Segment click to instance layer, 1024x1024 RGB: first {times[0]:.1f} s ({when}), "
          f"then {warm:.1f} s (median of {len(times) - 1}); {int(np.asarray(cells.data).max())} cells")  # fmt: skip

    # The sliders on realistic maps: a random decoder's probabilities are flat (one blob).
    from napari_cellseg._qt._layers import replace_labels
    from napari_cellseg.app.segment_session import watershed_again

    panel.probabilities = probabilities = realistic_probabilities()
    replace_labels(cells, watershed_again(probabilities, panel.watershed_params()))
    latencies, gui, worker = [], [], []
    previous = np.array(cells.data)
    for value in np.linspace(0.5, 0.8, slider_moves):
        before = panel.watershed_updates
        start = time.perf_counter()
        panel.interior_slider.setValue(float(value))
        process_events_until(
            lambda before=before: panel.watershed_updates > before and not panel.watershed_busy
        )
        latencies.append(time.perf_counter() - start)
        started = time.perf_counter()
        labels = watershed_again(probabilities, panel.watershed_params())
        worker.append(time.perf_counter() - started)
        replace_labels(cells, previous)  # time the GUI-thread update of this very change
        started = time.perf_counter()
        replace_labels(cells, labels)
        gui.append(time.perf_counter() - started)
        previous = labels
    print(f"slider to updated labels ({int(previous.max())} cells): {statistics.median(latencies) * 1000:.0f} ms "
          f"median over {slider_moves} moves (60 ms debounce; watershed {statistics.median(worker) * 1000:.0f} ms "
          f"in a worker; undoable layer update {statistics.median(gui) * 1000:.0f} ms in the GUI thread)")  # fmt: skip


def realistic_probabilities() -> np.ndarray:
    """(3, 1024, 1024) probabilities shaped like a trained model's: the tiled expert mask, blurred."""
    from scipy import ndimage as ndi

    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.sample_data import load_sample

    _, mask, _ = load_sample("c_histology_1")
    tiled = np.tile(mask, (4, 4))[:1024, :1024]
    offsets = (
        (np.arange(16).reshape(4, 4) * (int(mask.max()) + 1)).repeat(256, 0).repeat(320, 1)[:1024, :1024]
    )
    cells = np.where(tiled > 0, tiled + offsets, 0)
    target = instances_to_targets(cells)
    onehot = np.stack([ndi.gaussian_filter((target == k).astype(np.float32), 1.5) for k in range(3)])
    return onehot / onehot.sum(axis=0, keepdims=True)


def bench_training_gaps(viewer, tmp: Path, seconds: float) -> None:
    from qtpy.QtCore import QTimer

    root = sample_dataset(tmp / "dataset")
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    form = panel.form
    form.dataset_edit.setText(str(root))
    form.out_edit.setText(str(tmp / "model"))
    form.patch_spin.setValue(128)
    form.batch_spin.setValue(4)
    form.steps_spin.setValue(10)
    form.epochs_spin.setValue(1000)
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()) if panel.last_step is not None else None)
    timer.start(50)
    panel.start_button.click()
    process_events_until(lambda: bool(ticks) and ticks[-1] - ticks[0] >= seconds and bool(panel.plot.epochs))
    timer.stop()
    gaps = np.diff(ticks) * 1000
    crops = panel.last_step.samples_per_s if panel.last_step else float("nan")
    panel.stop_button.click()
    process_events_until(lambda: not panel.busy, timeout=300)
    print(f"training (l=4, l_a=4, 128 px crops, batch 4, {crops:.1f} crops/s, {len(panel.plot.epochs)} epoch ends "
          f"with dev scoring) for {ticks[-1] - ticks[0]:.0f} s: 50 ms timer, largest gap {gaps.max():.0f} ms, "
          f"99th percentile {np.percentile(gaps, 99):.0f} ms, median {np.median(gaps):.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4, help="segmentation clicks (the first is cold)")
    parser.add_argument("--slider-moves", type=int, default=7)
    parser.add_argument(
        "--open-wait",
        type=float,
        default=0.0,
        help="seconds between opening the Segment panel and the first click",
    )
    parser.add_argument("--train-seconds", type=float, default=20.0)
    args = parser.parse_args()
    import napari

    from napari_cellseg.app import current_model

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")  # leave the user's settings alone
        current_model.set_current_model(model_of_default_architecture(tmp))
        print(f"napari-cellseg Segment / Fine-tune panels, {os.cpu_count()} CPU cores")
        viewer = napari.Viewer(show=False)
        try:
            bench_segment(viewer, args.repeats, args.slider_moves, args.open_wait)
            bench_training_gaps(viewer, tmp, args.train_seconds)
        finally:
            viewer.close()


if __name__ == "__main__":
    main()
