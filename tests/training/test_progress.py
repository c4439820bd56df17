"""The command line's end-of-training lines."""

from __future__ import annotations

from napari_cellseg.training.progress import TrainProgress
from napari_cellseg.training.reports import TrainResult


def _result(**changes) -> TrainResult:
    values = dict(out_dir="runs/c", epochs_done=2, cancelled=False, best_epoch=2, best_score=0.61,
                  score_name="ap50", elapsed_s=65.0)  # fmt: skip
    return TrainResult(**{**values, **changes})


def test_the_summary_names_the_best_epoch_or_says_none_finished(capsys):
    TrainProgress().summary(_result())
    assert "best ap50 0.6100 at epoch 2; model in runs/c" in capsys.readouterr().err
    TrainProgress().summary(_result(best_score=None))
    assert "n/a (no dev set)" in capsys.readouterr().err
    # Ctrl-C inside the first epoch: not "no dev set" (there may be one), and no model to name
    TrainProgress().summary(_result(epochs_done=0, cancelled=True, best_epoch=0, best_score=None))
    err = capsys.readouterr().err
    # no position is saved before the first epoch ends: --resume would refuse, so the line says how to start again
    assert "no epoch finished: nothing to resume" in err and "--resume" not in err
    assert "napari-cellseg train --config runs/c/train_config.json --out runs/c" in err.replace("\\", "/")
    assert "no dev set" not in err and "model in" not in err
