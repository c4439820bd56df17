"""The run directory: the best model survives a crash while it is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_cellseg.models.checkpoint import check_model_dir
from napari_cellseg.training import checkpoints, locks
from napari_cellseg.training.engine import run_training
from napari_cellseg.training.setup import TrainingError


class _Crash(Exception):
    """Stands for a kill -9 between the best model's two files."""


def _crash_before_the_best_config(monkeypatch, out_dir: Path) -> None:
    real = checkpoints.atomic_write_bytes

    def write(path, data):
        if Path(path) == out_dir / "config.json":
            raise _Crash
        return real(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", write)


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_best_model_torn_by_a_crash_is_restored_on_resume(tiny_config, monkeypatch, same_weights, epochs):
    config = tiny_config(split_path=None, epochs=epochs, steps_per_epoch=1)
    out = Path(config.out_dir)
    if epochs == 2:  # the first epoch's best pair is whole; the second one's weights replace it
        run_training(config, cancel=_after(1))
        config_before = (out / "config.json").read_bytes()
    _crash_before_the_best_config(monkeypatch, out)
    with pytest.raises(_Crash):
        run_training(config, resume=epochs == 2)
    monkeypatch.undo()
    with pytest.raises(ValueError):  # torn: config missing, or of the previous epoch
        check_model_dir(out)
    if epochs == 2:
        assert (out / "config.json").read_bytes() == config_before

    result = run_training(config, resume=True)
    assert result.epochs_done == epochs and not result.cancelled
    assert check_model_dir(out).training["epoch"] == epochs
    same_weights(out, out / "last")


def test_a_kill_before_a_new_best_epoch_is_copied_is_caught_by_resume_and_the_sweep(
    tiny_config, monkeypatch, same_weights
):
    # last/ of epoch 2 (a new best) is swapped in, the kill comes before save_best: the
    # epoch-1 pair in OUT still loads, so only its epoch tells that it is stale.
    import shutil

    from napari_cellseg.training import engine
    from napari_cellseg.training.sweep import _check_done_model
    from napari_cellseg.training.sweep_grid import SweepPoint

    config = tiny_config(split_path=None, epochs=3, steps_per_epoch=1)  # no dev set: every epoch is best
    out = Path(config.out_dir)
    real = engine.save_best

    def save_best(out_dir, last):
        if check_model_dir(last).training["epoch"] == 2:
            raise _Crash
        real(out_dir, last)

    monkeypatch.setattr(engine, "save_best", save_best)
    with pytest.raises(_Crash):
        run_training(config)
    monkeypatch.undo()
    assert check_model_dir(out).training["epoch"] == 1  # loads, but stale
    assert checkpoints.repair_best(out) is None and check_model_dir(out).training["epoch"] == 2
    same_weights(out, out / "last")

    shutil.rmtree(out)  # again, now found by a sweep that calls the run done
    monkeypatch.setattr(engine, "save_best", save_best)
    with pytest.raises(_Crash):
        run_training(config)
    monkeypatch.undo()
    _check_done_model(SweepPoint("run", {}, config))
    assert check_model_dir(out).training["epoch"] == 2
    result = run_training(config, resume=True)  # and the run goes on from there
    assert result.epochs_done == 3 and check_model_dir(out).training["epoch"] == 3
    same_weights(out, out / "last")


def test_a_damaged_best_model_that_last_cannot_restore_is_named(tiny_config):
    config = tiny_config(split_path=None, epochs=2, steps_per_epoch=2)
    assert run_training(config, cancel=_after(3)).cancelled  # best: epoch 1; last/: step 3
    out = Path(config.out_dir)
    (out / "config.json").unlink()
    with pytest.raises(
        TrainingError, match=r"best model \(epoch 1\) is damaged.*missing config\.json.*new --out"
    ):
        run_training(config, resume=True)


def _after(steps: int):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > steps

    return cancel


def test_a_second_train_process_on_one_out_dir_is_refused_clearly(tiny_config):
    import os
    import platform
    import subprocess
    import sys

    from napari_cellseg.config import ConfigError

    config = tiny_config(epochs=1, steps_per_epoch=1)
    out = Path(config.out_dir)
    out.mkdir()
    (out / "train_config.json").write_text("{}")  # what the other process wrote: never undone by us
    lock = out / checkpoints.OUT_LOCK
    lock.write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")  # a live process trains into it
    with pytest.raises(ConfigError, match=rf"another train process is writing .*\(pid {os.getpid()} on "):
        run_training(config)
    assert lock.exists() and (out / "train_config.json").read_text() == "{}"
    (out / "train_config.json").unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}@{platform.node()}")  # killed: its lock is stale at once
    assert run_training(config).epochs_done == 1
    assert not lock.exists()


def test_a_lock_of_this_pid_without_this_process_token_is_an_earlier_ones(tmp_path):
    """A restarted container's process gets the dead one's pid (often 1): its lock is stale."""
    import platform

    lock = tmp_path / "lock"
    lock.write_text(f"{os.getpid()}@{platform.node()} 0123456789abcdef")
    assert locks.is_stale(lock, stale_s=600)
    lock.write_text(f"{os.getpid()}@{platform.node()}")  # the format before tokens
    assert locks.is_stale(lock, stale_s=600)
    lock.write_text(f"{os.getpid()}@{platform.node()} {locks.TOKEN}")
    assert not locks.is_stale(lock, stale_s=600)
    lock.write_text(f"{os.getpid()}@another-host {locks.TOKEN}")  # elsewhere: only its age tells
    assert not locks.is_stale(lock, stale_s=600) and locks.is_stale(lock, stale_s=-1)


def test_a_held_lock_is_kept_fresh_while_its_run_is_busy_without_reports(tmp_path):
    """A long dev evaluation yields nothing: the lock must not age into looking dead."""
    import time

    path = locks.take_lock(tmp_path / "lock", stale_s=0.5)  # touched every 0.05 s
    old = time.time() - 3600
    os.utime(path, (old, old))
    time.sleep(0.3)
    assert time.time() - path.stat().st_mtime < 0.3 and not locks.is_stale(path, 0.5)
    path.unlink()
    assert locks.take_lock(tmp_path / "lock", stale_s=600) is not None
