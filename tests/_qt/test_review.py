"""The Review dock widget in a real napari viewer (under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app.review import compare_labels
from napari_cellseg.metrics import DSB_THRESHOLDS


def _expected(info):
    """TP per threshold: 93 exact cells, plus the merged and split objects while their IoU holds."""
    n_gt, n_pred = info["n_gt"], info["n_gt"] - 1
    tp = [n_gt - 4 + (info["merge_iou"] >= t) + (info["split_iou"] >= t) for t in DSB_THRESHOLDS]
    ap = [k / (k + (n_pred - k) + (n_gt - k)) for k in tp]
    return tp, ap


def test_compare_labels_known_pair(labels_pair):
    gt, pred, info = labels_pair
    result = compare_labels(gt, pred)
    m, errors = result.metrics, result.errors
    assert (m.n_gt, m.n_pred) == (97, 96)
    assert m.at("tp", 0.5) == 95 and m.at("fp", 0.5) == 1 and m.at("fn", 0.5) == 2
    assert m.at("ap", 0.5) == pytest.approx(95 / 98)
    assert m.at("f1", 0.5) == pytest.approx(190 / 193)
    tp, ap = _expected(info)
    assert list(m.tp) == tp
    assert m.dsb_score == pytest.approx(np.mean(ap))
    a, b = info["merged"]
    assert errors["false_negative_ids"] == [info["removed"]]
    assert errors["merged_ids"] == [a] and sorted(errors["merged_gt_ids"]) == sorted([a, b])
    assert errors["split_ids"] == [info["split"]]
    assert errors["false_positive_ids"] == []
    assert "1 false negative" in result.summary() and "1 merged" in result.summary()


def test_compare_labels_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        compare_labels(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_review_widget_compares_layers(make_napari_viewer, labels_pair, wait_for_job):
    gt, pred, info = labels_pair
    viewer = make_napari_viewer()
    viewer.add_labels(gt, name="truth")
    prediction = viewer.add_labels(pred, name="prediction", scale=(2, 2), rotate=15, units=("um", "um"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.gt_combo.setCurrentText("truth")
    widget.pred_combo.setCurrentText("prediction")
    widget.compare_button.click()
    task = wait_for_job(widget)
    assert task.error is None
    table = widget.image_table
    assert table.horizontalHeaderItem(1).text() == "prediction"
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows["AP@0.5"] == f"{95 / 98:.3f}" and rows["F1@0.5"] == f"{190 / 193:.3f}"
    assert rows["DSB score"] == f"{np.mean(_expected(info)[1]):.3f}"
    assert (rows["true cells"], rows["predicted cells"]) == ("97", "96")
    counts = [rows[k] for k in ("false positives", "false negatives", "split cells", "merged cells")]
    assert counts == ["0", "1", "1", "1"]
    fn = viewer.layers["review: false negatives"]
    assert set(np.unique(fn.data)) == {0, info["removed"]}
    assert fn.metadata["ids"] == [info["removed"]]
    assert tuple(fn.scale) == (2, 2)  # drawn over the prediction, rotation and units included
    np.testing.assert_allclose(fn.data_to_world((10.0, 20.0)), prediction.data_to_world((10.0, 20.0)))
    assert str(fn.units[0]) == "micrometer"
    merged = viewer.layers["review: merged cells"]
    assert set(np.unique(merged.data)) == {0, info["merged"][0]}
    assert viewer.layers["review: split cells"].metadata["ids"] == [info["split"]]
    assert not viewer.layers["review: false positives"].data.any()
    assert "AP@0.5 0.969" in widget.message.text()
    assert "the two layers lie differently in the viewer" in widget.message.text()  # scale 2 vs 1

    widget.compare_button.click()  # again: the error layers are replaced, not duplicated
    wait_for_job(widget)
    assert sum(layer.name.startswith("review:") for layer in viewer.layers) == 4


def test_review_widget_reports_bad_pair(make_napari_viewer, wait_for_job):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="small")
    viewer.add_labels(np.zeros((8, 9), np.uint8), name="wide")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.gt_combo.setCurrentText("small")
    widget.pred_combo.setCurrentText("wide")
    before = len(notification_manager.records)
    widget.compare_button.click()
    task = wait_for_job(widget)
    assert isinstance(task.error, ValueError)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("Compare failed" in m and "(8, 8)" in m and "(8, 9)" in m for m in messages)
    assert "(8, 9)" in widget.message.text()


def test_evaluate_button_says_when_no_model(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.model_edit.setText(str(tmp_path / "no-such-model"))
    assert not widget.evaluate_button.isEnabled()
    assert "No model" in widget.evaluate_button.text()
    assert "no such model directory" in widget.evaluate_button.toolTip()


def test_evaluate_model_on_dev_split(make_napari_viewer, tiny_dataset, tiny_model_dir, wait_for_job):
    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.data.split import split_dataset
    from napari_cellseg.data.splitfile import write_split
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image
    from napari_cellseg.metrics import image_metrics

    dataset = CellDataset.open(tiny_dataset)
    split = split_dataset(dataset, grouping=False)
    write_split(tiny_dataset / "split.csv", split.subsets, split.microscopes)
    (dev_id,) = [i for i, s in split.subsets.items() if s == "dev"]
    model, config = resolve_model(tiny_model_dir, device="cpu")
    labels = segment_image(model, config, dataset.load_image(dev_id)).labels
    expected = image_metrics(dataset.load_instances(dev_id), labels)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    widget.dataset_edit.setText(str(tiny_dataset))
    widget.model_edit.setText(str(tiny_model_dir))
    assert widget.evaluate_button.isEnabled() and widget.evaluate_button.text() == "Evaluate the model"
    widget.evaluate_button.click()
    task = wait_for_job(widget, timeout=60000)
    assert task.error is None
    table = widget.model_table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())}  # fmt: skip
    assert set(rows) == {"C", "all"}
    assert rows["C"][1:4] == ["1", str(expected.n_gt), f"{expected.at('ap', 0.5):.3f}"]
    assert rows["C"][6] == f"{expected.dsb_score:.3f}"
    assert task.result.images[0].name == dev_id

    (tiny_dataset / "split.csv").unlink()
    widget.evaluate_button.click()  # refused: the split is gone; the dev rows must not stay up
    assert "no split file at" in widget.message.text() and widget.model_table.rowCount() == 0
    widget.dataset_edit.setText(str(tiny_dataset.parent / "no-such-dataset"))
    widget.evaluate_button.click()
    assert widget.message.text().startswith("no dataset folder at")  # not "split the dataset first"


def test_layers_lie_alike_only_when_every_pixel_maps_to_the_same_world_point():
    from napari.layers import Labels

    from napari_cellseg._qt.review import _lie_alike

    data = np.zeros((10, 12), np.uint16)
    placed = Labels(data, scale=(0.5, 0.5), translate=(3, 4))
    assert _lie_alike(placed, Labels(data, scale=(0.5, 0.5), translate=(3, 4)))
    assert not _lie_alike(placed, Labels(data, scale=(0.5, 0.5)))
    assert not _lie_alike(placed, Labels(data, scale=(0.5, 0.5), translate=(3, 4), rotate=5))


def test_one_layer_in_both_boxes_is_refused_and_a_new_one_becomes_the_prediction(make_napari_viewer, qtbot):
    # The plugin gets napari's proxies of the layers: `gt is pred` never held, and the expert
    # mask compared with itself scored AP@0.5 1.000.
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellseg", "c_histology_1")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    (mask,) = [layer.name for layer in viewer.layers if layer._type_string == "labels"]
    assert widget.gt_combo.currentText() == widget.pred_combo.currentText() == mask
    widget.compare_button.click()
    assert "same layer" in widget.message.text() and not widget.busy
    viewer.add_labels(np.zeros(viewer.layers[mask].data.shape, np.uint16), name="my cells")
    assert (widget.gt_combo.currentText(), widget.pred_combo.currentText()) == (mask, "my cells")
    viewer.add_labels(np.zeros((4, 4), np.uint8), name="other")  # a choice of two layers stays
    assert widget.pred_combo.currentText() == "my cells"


def test_a_mask_opened_after_segmenting_becomes_the_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    cells = viewer.add_labels(np.zeros((8, 8), np.uint16), name="scan segmented cells")
    cells.metadata["model"] = "/models/default"  # as Segment writes it
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="expert mask")
    assert (widget.gt_combo.currentText(), widget.pred_combo.currentText()) == (
        "expert mask",
        "scan segmented cells",
    )
