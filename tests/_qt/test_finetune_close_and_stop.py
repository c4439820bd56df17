"""Closing the Fine-tune panel mid-run, and what Stop says when no epoch has ended.

napari's close button (and ``remove_dock_widget``) takes a panel out of its dock
without closing it: the panel must still stop its run, which must not become the
current model, and no other run may start until it ended. A run stopped in its
first epoch has no model and no dev score yet: the status line says so.
"""

from __future__ import annotations

from napari_cellseg.app import current_model
from napari_cellseg.app.finetune_estimate import Saved, result_text, saved_in
from napari_cellseg.training.reports import TrainResult


def _stepping(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.last_step is not None, timeout=120000)


# Long epochs of tiny steps: the run is always in its first epoch when a test acts.
LONG_EPOCHS = dict(epochs=2, steps=500, batch=2)


def _training(make_napari_viewer, qtbot, settings, root, out):
    """A new viewer's Fine-tune panel whose run into ``out`` has made a step: (viewer, dock, panel)."""
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    settings(widget, root, out, **LONG_EPOCHS)
    widget.start_button.click()
    _stepping(qtbot, widget)
    return viewer, dock, widget


def test_closing_the_dock_stops_its_run_and_no_other_run_starts_meanwhile(
    make_napari_viewer, qtbot, split_dataset, tmp_path, tiny_finetune_settings
):
    out = tmp_path / "closed"
    viewer, dock, widget = _training(make_napari_viewer, qtbot, tiny_finetune_settings, split_dataset, out)
    process, task = widget.process, widget.task
    try:
        dock.title.close_button.click()  # the panel's X: napari takes it out of its dock
        assert process.stop_requested  # at once, as the Stop button asks

        # reopened before the closed panel's run ended (no event processed: its reports still come)
        _, again = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
        assert again is not widget and not task.finished
        assert not again.start_button.isEnabled() and not again.resume_button.isEnabled()
        assert "still saving its position" in again.message.text()
        tiny_finetune_settings(again, split_dataset, tmp_path / "second", **LONG_EPOCHS)
        again.start_training()  # called directly: no second run beside the first
        assert again.process is None and "wait for it to end" in again.message.text()

        qtbot.waitUntil(lambda: task.finished and not process.running, timeout=120000)
        assert widget.result is not None and widget.result.cancelled
        assert current_model.get_current_model_dir(default=False) is None  # Segment did not switch
        assert saved_in(out).resumable  # the position was saved, as Stop does
        qtbot.waitUntil(again.start_button.isEnabled, timeout=10000)
        assert not again.busy and not again.stop_button.isEnabled()
        again.form.out_edit.setText(str(out))
        assert again.resume_button.isEnabled()  # the closed panel's run goes on from here
    finally:
        process.kill()


def test_removing_the_panel_or_closing_the_viewer_stops_the_run(
    make_napari_viewer, qtbot, split_dataset, tmp_path, tiny_finetune_settings
):
    viewer, _, widget = _training(
        make_napari_viewer, qtbot, tiny_finetune_settings, split_dataset, tmp_path / "removed"
    )
    first = widget.process
    try:
        viewer.window.remove_dock_widget(widget)  # by its inner widget, as plugins and scripts do
        assert first.stop_requested
        qtbot.waitUntil(lambda: not first.running and widget.task.finished, timeout=120000)
        assert current_model.get_current_model_dir(default=False) is None
    finally:
        first.kill()

    viewer, _, widget = _training(
        make_napari_viewer, qtbot, tiny_finetune_settings, split_dataset, tmp_path / "viewer-closed"
    )
    second = widget.process
    try:
        viewer.close()
        qtbot.waitUntil(lambda: second.stop_requested, timeout=10000)
        qtbot.waitUntil(lambda: not second.running, timeout=120000)
        assert not second.killed  # a clean stop: the position is saved
        assert saved_in(tmp_path / "viewer-closed").resumable
    finally:
        second.kill()


def test_stopping_in_the_first_epoch_says_what_was_saved(
    make_napari_viewer, qtbot, split_dataset, tmp_path, tiny_finetune_settings
):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    out = tmp_path / "first-epoch"
    tiny_finetune_settings(widget, split_dataset, out, **LONG_EPOCHS)
    try:
        widget.start_button.click()
        _stepping(qtbot, widget)
        widget.stop_button.click()
        widget.stop_button.click()  # "Stop now": killed before anything was saved
        qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
        text = widget.message.text()
        assert not widget.resume_button.isEnabled() and not widget.use_button.isEnabled()
        assert "nothing was saved" in text and "Start again" in text and "Resume" not in text

        widget.start_button.click()  # Start again, into the same folder
        _stepping(qtbot, widget)
        widget.stop_button.click()  # Stop: the position in epoch 1 is saved, no model yet
        qtbot.waitUntil(lambda: not widget.busy, timeout=60000)
        text = widget.message.text()
        assert widget.result.cancelled and widget.result.epochs_done == 0
        assert "no dev images" not in text and "Use for Segment" not in text  # the split has a dev image
        assert "before the first epoch ended" in text and "of epoch 1" in text
        assert widget.resume_button.isEnabled() and not widget.use_button.isEnabled()
    finally:
        if widget.process is not None:
            widget.process.kill()


def test_result_texts_follow_what_the_output_folder_holds():
    stopped = TrainResult("/out", 0, True, 0, None, "ap50", 12.0)
    nothing = Saved()
    assert result_text(None, saved=nothing, dev_images=1) == (
        "Stopped at once before the first epoch ended: nothing was saved; Start again."
    )
    assert result_text(stopped, saved=nothing, dev_images=1).startswith("Stopped before the first epoch")
    mid = Saved(resumable=True, step=7)
    text = result_text(stopped, saved=mid, dev_images=1)
    assert "no model yet" in text and "Resume continues after step 7 of epoch 1" in text
    assert "no dev images" not in text and "Use for Segment" not in text
    assert result_text(None, saved=Saved(True, True, 3), dev_images=1) == (
        "Stopped at once; Resume continues after epoch 3."
    )
    # epoch 1 ended but dev is scored every 2 epochs: no best model yet
    unscored = TrainResult("/out", 1, True, 0, None, "ap50", 12.0)
    text = result_text(unscored, saved=Saved(False, True, 1), dev_images=1)
    assert "n/a (not scored yet)" in text and "Use for Segment" not in text
    text = result_text(unscored, saved=Saved(True, True, 1), dev_images=0)
    assert "no dev images" in text and "'Use for Segment' takes the best model so far" in text


def test_a_panel_of_another_viewer_waits_for_a_run_started_later(
    make_napari_viewer, qtbot, split_dataset, tmp_path, tiny_finetune_settings
):
    # only a panel opened during the run knew of it: an open one kept Start on, then a stale refusal
    first, second = make_napari_viewer(), make_napari_viewer()
    _, a = first.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    _, b = second.window.add_plugin_dock_widget("napari-cellseg", "Fine-tune")
    tiny_finetune_settings(a, split_dataset, tmp_path / "a", epochs=2, steps=10)
    tiny_finetune_settings(b, split_dataset, tmp_path / "b", epochs=2, steps=10)
    try:
        a.start_button.click()
        qtbot.waitUntil(lambda: a.last_step is not None, timeout=60000)
        assert not b.start_button.isEnabled() and "is training into" in b.message.text()
        qtbot.waitUntil(lambda: not a.busy, timeout=120000)
        qtbot.waitUntil(lambda: b.start_button.isEnabled(), timeout=10000)
        assert "The other run has ended" in b.message.text()
    finally:
        if a.process is not None:
            a.process.kill()
