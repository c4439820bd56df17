"""The command line's end-of-training lines."""

from __future__ import annotations

from napari_cellseg.training.progress import TrainProgress
from napari_cellseg.training.reports import TrainResult


def _result(**changes) -> TrainResult:
    values = dict(out_dir="runs/c", epochs_done=2, cancelled=False, best_epoch=2, best_score=0.61,
                  score_name="ap50", elapsed_s=65.0)  # fmt: skip
    return TrainResult(**{**values, **changes})


def test_the_summary_names_the_best_epoch_or_says_none_finished(capsys, tmp_path):
    TrainProgress().summary(_result())
    assert "best ap50 0.6100 at epoch 2; model in runs/c" in capsys.readouterr().out  # a result: stdout
    TrainProgress().summary(_result(best_score=None))
    assert "n/a (no dev set)" in capsys.readouterr().out
    # Ctrl-C inside the first epoch: not "no dev set" (there may be one), and no model to name
    out = tmp_path / "c"
    (out / "last").mkdir(parents=True)
    (out / "last" / "training_state.json").write_text("{}")  # the engine saved the position
    TrainProgress().summary(
        _result(out_dir=str(out), epochs_done=0, cancelled=True, best_epoch=0, best_score=None)
    )
    err = capsys.readouterr().err
    assert f"continue with --resume --out {out}" in err and "no epoch finished" in err
    assert "no dev set" not in err and "model in" not in err
    # stopped while starting, before any step: no position, so --resume would refuse
    (out / "last" / "training_state.json").unlink()
    TrainProgress().summary(
        _result(out_dir=str(out), epochs_done=0, cancelled=True, best_epoch=0, best_score=None)
    )
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "--resume" not in err
    assert f"napari-cellseg train --config {out / 'train_config.json'} --out {out}" in err
