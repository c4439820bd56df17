"""The Dataset dock widget in a real napari viewer: check, split, preview augmentation."""

from __future__ import annotations

import numpy as np

from napari_cellseg.data.splitfile import read_split


def _table(table) -> list[list[str]]:
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    rows = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]
    return [header, *rows]


def _dock(make_napari_viewer, name: str = "Dataset"):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", name)
    return viewer, widget


def _notifications_since(before: int) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records[before:]]


def _n_notifications() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def test_split_tiny_dataset_shows_counts(make_napari_viewer, tiny_dataset, wait_for_job):
    _, widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.grouping_check.setChecked(False)  # crops of one field would be grouped: see docs/dataset.md
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    assert _table(widget.counts_table) == [
        ["subset", "A", "B", "C", "total"],
        ["train", "3", "1", "8", "12"],
        ["dev", "0", "0", "1", "1"],
        ["test", "0", "0", "1", "1"],
        ["total", "3", "1", "10", "14"],
    ]
    split = read_split(tiny_dataset / "split.csv")
    assert len(split) == 14
    manifest = (tiny_dataset / "manifest.csv").read_text()
    for image_id, subset in split.items():
        if subset != "train":
            assert f"{image_id},C" in manifest
    assert widget.problems_list.count() == 0
    assert "split.csv" in widget.message.text()
    assert widget.counts_label.text() == "Images per subset and microscope"


def test_check_lists_problems_by_file(make_napari_viewer, tiny_dataset, wait_for_job):
    (tiny_dataset / "masks" / "c_histology_2_crop1.tif").unlink()
    with open(tiny_dataset / "manifest.csv", "a") as fh:
        fh.write("scan-9,D?\n")  # no tag (D would be a lab's own microscope, taken)
    _, widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.check_button.click()
    wait_for_job(widget)
    items = [widget.problems_list.item(i).text() for i in range(widget.problems_list.count())]
    assert any(i.startswith("masks/c_histology_2_crop1") and "missing mask" in i for i in items)
    assert any(i.startswith("manifest.csv") and "'D?' is not a tag" in i for i in items)
    assert "2 problem(s)" in widget.message.text()

    before = _n_notifications()
    widget.split_button.click()  # the split refuses the same dataset, listing the same files
    task = wait_for_job(widget)
    assert task.error is not None and widget.problems_list.count() == 2
    assert any(m.startswith("Split failed") for m in _notifications_since(before))
    assert not (tiny_dataset / "split.csv").exists()


def test_check_reads_pixels_counts_cells_and_names_a_binary_mask(
    make_napari_viewer, tiny_dataset, wait_for_job
):
    import tifffile

    _, widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.check_button.click()
    assert wait_for_job(widget).error is None
    header, images, cells = _table(widget.counts_table)
    assert header == ["", "A", "B", "C", "total"] and images == ["images", "3", "1", "10", "14"]
    assert widget.counts_label.text() == "Images and cells per microscope"
    assert cells[0] == "cells" and int(cells[-1]) == sum(int(n) for n in cells[1:-1]) > 14

    mask_path = tiny_dataset / "masks" / "c_histology_2_crop1.tif"
    mask = tifffile.imread(mask_path)
    tifffile.imwrite(mask_path, np.where(mask > 0, 255, 0).astype(np.uint8))  # a binary mask
    widget.check_button.click()
    wait_for_job(widget)
    items = [widget.problems_list.item(i).text() for i in range(widget.problems_list.count())]
    assert len(items) == 1 and items[0].startswith("masks/c_histology_2_crop1.tif: one label (255)")
    assert "1 problem(s)" in widget.message.text() and widget.counts_table.rowCount() == 0


def test_impossible_split_fails_clearly(make_napari_viewer, sample_dataset_dir, tmp_path, wait_for_job):
    _, widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(sample_dataset_dir))  # 2 C images only
    widget.split_edit.setText(str(tmp_path / "split.csv"))
    before = _n_notifications()
    widget.split_button.click()
    wait_for_job(widget)
    messages = _notifications_since(before)
    assert any("Split failed" in m and "target 'C' has 2 images" in m for m in messages)
    assert not (tmp_path / "split.csv").exists()


def test_saved_correction_goes_to_train(make_napari_viewer, tiny_dataset, wait_for_job):
    """The human-in-the-loop cycle: split, correct a prediction, save it, split again."""
    from napari_cellseg.sample_data import load_sample

    viewer, dataset_panel = _dock(make_napari_viewer)
    dataset_panel.dataset_edit.setText(str(tiny_dataset))
    dataset_panel.grouping_check.setChecked(False)
    dataset_panel.split_button.click()
    wait_for_job(dataset_panel)
    first = read_split(tiny_dataset / "split.csv")

    image, mask, _ = load_sample("c_histology_2")
    viewer.add_image(image[::-1].copy(), name="new slide", metadata={"microscope": "C"})
    prediction = viewer.add_labels(mask[::-1].copy(), name="prediction")
    prediction.data_setitem(np.nonzero(prediction.data == 3), 0)  # the doctor's correction
    _, annotate = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    annotate.image_combo.setCurrentText("new slide")
    annotate.cells_combo.setCurrentText("prediction")
    annotate.save_what_combo.setCurrentText("cells (instances)")
    annotate.dataset_edit.setText(str(tiny_dataset))
    annotate.save_button.click()
    assert wait_for_job(annotate).error is None

    dataset_panel.split_button.click()
    assert wait_for_job(dataset_panel).error is None
    second = read_split(tiny_dataset / "split.csv")
    assert second["new_slide"] == "train"
    assert {i: second[i] for i in first} == first  # nothing moved
    assert "Kept 14 earlier assignments; 1 new image(s) placed" in dataset_panel.message.text()
    assert _table(dataset_panel.counts_table)[1] == ["train", "3", "1", "9", "13"]


def test_preview_augmented_samples(make_napari_viewer, tiny_dataset, wait_for_job):
    viewer, widget = _dock(make_napari_viewer)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.check_button.click()
    wait_for_job(widget)
    assert widget.id_combo.count() == 14
    widget.id_combo.setCurrentIndex(widget.id_combo.findText("c_histology_1_crop0 [C]"))
    widget.n_spin.setValue(3)
    widget.patch_spin.setValue(64)
    widget.preview_button.click()
    assert wait_for_job(widget).error is None
    images = viewer.layers["augmented c_histology_1_crop0"]
    targets = viewer.layers["augmented c_histology_1_crop0 targets"]
    assert images.data.shape == (3, 64, 64, 3) and images.rgb
    assert targets.data.shape == (3, 64, 64)
    assert set(np.unique(targets.data)) <= {0, 1, 2} and (targets.data == 1).any()
    assert not np.array_equal(images.data[0], images.data[1])  # three different draws


def test_images_outlined_in_qupath_are_added_and_the_others_listed(
    make_napari_viewer, tmp_path, wait_for_job
):
    import shutil

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference.outlines import write_geojson
    from napari_cellseg.sample_data import SAMPLE_DIR

    samples = CellDataset.open(SAMPLE_DIR)
    slides = tmp_path / "slides"
    slides.mkdir()
    for record in samples.records:
        shutil.copyfile(record.image_path, slides / record.image_path.name)
    outlined = samples.records[:2]
    for record in outlined:
        write_geojson(slides / f"{record.id}.geojson", samples.load_instances(record.id))
    _, widget = _dock(make_napari_viewer)
    box = widget.import_box
    box.import_button.click()
    assert "choose a dataset folder first" in widget.message.text()
    widget.dataset_edit.setText(str(tmp_path / "new-dataset"))
    box.images_edit.setText(str(slides))
    box.microscope_combo.setCurrentText("B")
    box.import_button.click()
    assert wait_for_job(widget).error is None
    cells = sum(int(samples.load_instances(r.id).max()) for r in outlined)
    assert f"Added 2 image(s) with {cells} cells" in widget.message.text()
    assert widget.problems_list.count() == len(samples) - 2
    assert "no outlines" in widget.problems_list.item(0).text()
    imported = CellDataset.open(tmp_path / "new-dataset")
    assert sorted(imported.ids) == sorted(r.id for r in outlined)
    assert {r.microscope for r in imported} == {"B"}


def test_another_datasets_split_file_is_never_overwritten(
    make_napari_viewer, tiny_dataset, tmp_path, wait_for_job
):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    _, widget = _dock(make_napari_viewer)
    widget.grouping_check.setChecked(False)
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.split_edit.setText(str(tiny_dataset / "split.csv"))  # as the Browse dialog gives it
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    before = (tiny_dataset / "split.csv").read_text()
    widget.dataset_edit.setText(str(copy))  # on to another dataset
    assert widget.split_edit.path() is None  # the first one's file is let go
    widget.seed_spin.setValue(7)
    widget.keep_check.setChecked(False)
    widget.split_button.click()
    assert wait_for_job(widget).error is None
    assert (copy / "split.csv").is_file() and (tiny_dataset / "split.csv").read_text() == before
