"""Training's command-line progress in a log file (``2> log``, a Slurm job): lines, no bar."""

from __future__ import annotations

import io

from napari_cellseg.training.progress import TrainProgress
from napari_cellseg.training.reports import StartReport, StepReport


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _start() -> StartReport:
    return StartReport(
        device="cpu", device_reason="no GPU", amp=None, threads=1, workers=0, world_size=1,
        n_train_images=4, n_dev_images=2, train_counts={"C": 4}, trainable_params=10, total_params=10,
        epochs=2, steps_per_epoch=3, global_batch_size=2, start_epoch=1, start_step=0, resumed=False,
        score_name="ap50", out_dir="runs/c",
    )  # fmt: skip


def _steps(progress: TrainProgress) -> None:
    progress.update(_start())
    for step in (1, 2, 3):
        progress.update(StepReport(epoch=1, step=step, steps_per_epoch=3, global_step=step, total_steps=6,
                                   loss=0.5, lr=1e-3, samples_per_s=2.0, elapsed_s=1.0, eta_s=3.0))  # fmt: skip


def test_a_log_gets_the_start_lines_and_no_bar_a_terminal_its_bar():
    log = io.StringIO()
    with TrainProgress(stream=log) as progress:
        _steps(progress)
        assert progress.bar is None
    text = log.getvalue()
    assert text.startswith("device: cpu (no GPU)") and "train: 4 images" in text
    assert "\r" not in text and "\x1b[" not in text and "step" not in text
    terminal = _Terminal()
    with TrainProgress(stream=terminal) as progress:
        _steps(progress)
        assert progress.bar is not None and progress.bar.n == 3


def test_a_sweep_draws_no_bar_in_a_log(capsys):
    from types import SimpleNamespace

    from napari_cellseg.training.sweep_commands import SweepProgress

    with SweepProgress(enabled=True) as progress:  # stderr captured: not a terminal
        progress.update(SimpleNamespace(kind="plan", total=2, done=0, message="2 runs"))
        progress.update(SimpleNamespace(kind="start", name="l4"))
    err = capsys.readouterr().err
    assert err == "2 runs\n"
