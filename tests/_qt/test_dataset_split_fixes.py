"""Dataset panel > Split: another dataset's split file, a fresh split over an unreadable file, advice.

Each test failed before the fix: another dataset's split.csv was rewritten with this dataset's ids;
with "Keep an existing split's subsets" unticked the old file was still read (and a file Excel had
re-saved blocked the split); "a test ratio of 0" was advised where it could not work.
"""

from __future__ import annotations

import shutil

import pytest

from napari_cellseg.app.dataset_tools import iter_run_split
from napari_cellseg.data.split import SplitConfig, SplitError
from napari_cellseg.data.splitfile import read_split
from napari_cellseg.generators import run_to_end

NO_GROUPING = SplitConfig(grouping=False)


def _dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    widget.grouping_check.setChecked(False)  # exact counts, no pixel reading: fast
    return widget


def _add_c_image(root, image_id: str) -> None:
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import load_sample

    image, mask, _ = load_sample("c_histology_1")
    add_to_dataset(root, image_id, image[:100, :100].copy(), mask[:100, :100].copy(), "C")


@pytest.fixture
def two_versions(tiny_dataset, tmp_path):
    """``(v1, v2)``: v1 split, v2 a copy of it plus one new C image and without a split file."""
    run_to_end(iter_run_split(tiny_dataset, NO_GROUPING))
    v2 = tmp_path / "v2"
    shutil.copytree(tiny_dataset, v2)
    (v2 / "split.csv").unlink()
    _add_c_image(v2, "new1")
    return tiny_dataset, v2


def _unreadable(path) -> None:
    """A split as Excel re-saves it on Windows (cp1252), with a row repeated."""
    text = path.read_text()
    first = text.splitlines()[1]
    path.write_bytes(text.encode() + f"{first}\nx_café,C,train,\n".encode("cp1252"))


# --- another dataset's split file --------------------------------------------------------------


def test_another_datasets_split_is_read_and_this_ones_written(make_napari_viewer, two_versions, wait_for_job):
    v1, v2 = two_versions
    before = (v1 / "split.csv").read_text()
    widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(v2))
    widget.split_edit.setText(str(v1 / "split.csv"))  # "keep v1's subsets"
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    assert (v1 / "split.csv").read_text() == before
    old, new = read_split(v1 / "split.csv"), read_split(v2 / "split.csv")
    assert {i: new[i] for i in old} == old and new["new1"] == "train" and len(new) == len(old) + 1
    message = widget.message.text()
    assert message.startswith(f"wrote {v2 / 'split.csv'}")
    assert f"Kept {len(old)} earlier assignments (from {v1 / 'split.csv'}); 1 new image(s) placed" in message
    assert widget.split_edit.path() == v2 / "split.csv"  # a second Split extends v2's own file


def test_another_datasets_split_never_replaces_this_ones_unasked(two_versions):
    v1, v2 = two_versions
    run_to_end(iter_run_split(v2, NO_GROUPING, keep_previous=False))
    files = {p: p.read_text() for p in (v1 / "split.csv", v2 / "split.csv")}
    for keep in (True, False):
        with pytest.raises(SplitError, match=r"never rewritten.*exists already: choose that one"):
            run_to_end(iter_run_split(v2, NO_GROUPING, v1 / "split.csv", keep_previous=keep))
    assert {p: p.read_text() for p in files} == files


def test_a_fresh_split_with_another_datasets_file_goes_to_this_ones(two_versions):
    v1, v2 = two_versions
    before = (v1 / "split.csv").read_text()
    run = run_to_end(iter_run_split(v2, NO_GROUPING, v1 / "split.csv", keep_previous=False))
    assert run.path == v2 / "split.csv" and not run.previous_used and run.previous_path is None
    assert (v1 / "split.csv").read_text() == before and len(read_split(run.path)) == 15
    assert any("belongs to another dataset" in note for note in run.notes)


# --- a fresh split does not read the old file --------------------------------------------------


def test_unticked_keep_replaces_an_unreadable_split(make_napari_viewer, tiny_dataset, wait_for_job):
    widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    _unreadable(tiny_dataset / "split.csv")
    widget.keep_check.setChecked(False)
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    assert widget.message.text().startswith("wrote")
    assert len(read_split(tiny_dataset / "split.csv")) == 14  # replaced by a valid split


def test_keeping_an_unreadable_split_still_asks_for_it_to_be_fixed(tiny_dataset):
    path = run_to_end(iter_run_split(tiny_dataset, NO_GROUPING)).path
    _unreadable(path)
    broken = path.read_bytes()
    with pytest.raises(SplitError, match="not UTF-8"):
        run_to_end(iter_run_split(tiny_dataset, NO_GROUPING))
    assert path.read_bytes() == broken
    fresh = run_to_end(iter_run_split(tiny_dataset, NO_GROUPING, keep_previous=False))
    assert not fresh.previous_used and len(read_split(path)) == 14


def test_a_fresh_split_replaces_no_file_that_is_not_this_datasets_split(tiny_dataset, tmp_path):
    manifest = tiny_dataset / "manifest.csv"
    notes = tmp_path / "notes.csv"
    notes.write_text("name,value\nx,1\n")
    for path, match in ((manifest, "the dataset's manifest"), (notes, "not a split file")):
        before = path.read_text()
        with pytest.raises(SplitError, match=match):
            run_to_end(iter_run_split(tiny_dataset, NO_GROUPING, path, keep_previous=False))
        assert path.read_text() == before


# --- advice that works -------------------------------------------------------------------------


def test_split_advice_on_the_demo_dataset_holds(
    make_napari_viewer, sample_dataset_dir, tmp_path, wait_for_job
):
    root = shutil.copytree(sample_dataset_dir, tmp_path / "demo")  # 3 A, 1 B, 2 C: the demo
    widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(root))
    widget.split_button.click()
    wait_for_job(widget)
    message = widget.message.text()
    assert "No ratios can split 2 C images: this needs at least 4 C images" in message
    assert "test ratio of 0" not in message

    _add_c_image(root, "third_c")  # 3 C images: now a test ratio of 0 does work, and is offered
    widget.split_button.click()
    wait_for_job(widget)
    assert "or a test ratio of 0 (no test set), e.g. ratios 0.95 0.05 0 " in widget.message.text()
    widget.train_spin.setValue(0.95)
    widget.test_spin.setValue(0.0)
    widget.split_button.click()
    assert wait_for_job(widget).error is None and widget.message.text().startswith("wrote")


def test_ratio_fields_take_the_three_decimals_advice_may_give(make_napari_viewer):
    widget = _dock(make_napari_viewer)
    widget.dev_spin.setValue(0.005)
    widget.test_spin.setValue(0.005)
    widget.train_spin.setValue(0.99)
    assert widget.split_config().ratios == pytest.approx((0.99, 0.005, 0.005))


def test_the_ratio_boxes_show_their_three_decimals(make_napari_viewer):
    # napari's arrow buttons took ~60 px of each box: "0.900" showed as "0.90("
    viewer = make_napari_viewer(show=True)
    _, panel = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    for spin in (panel.train_spin, panel.dev_spin, panel.test_spin):
        edit = spin.lineEdit()
        assert spin.decimals() == 3
        assert edit.fontMetrics().horizontalAdvance(spin.text()) <= edit.width()
