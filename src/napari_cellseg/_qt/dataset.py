"""The Dataset dock widget: check a dataset folder, split it, preview augmentation.

The logic lives in :mod:`napari_cellseg.app.dataset_tools` and the ``data``
package; this panel collects the settings, runs them in a thread worker and
shows the counts table, the problems by file and the augmented samples.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
)

from ..app.dataset_tools import (
    default_split_path,
    iter_check_dataset,
    iter_run_split,
    preview_dataset_augmentations,
    problem_lines,
    split_file_owner,
)
from ..app.microscope_tags import dataset_tags
from ..data.augment import PRESETS, TRAINING_PRESET
from ._common import PathEdit, annotation_colormap, clear_table, fill_table
from ._import_box import ImportBox
from ._microscope_combo import MicroscopeCombo
from ._panel import TaskPanel


def _ratio_spin(value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 0.99)
    spin.setDecimals(3)  # a few images of a large pool: e.g. 0.005 of 660 is 3 images
    spin.setSingleStep(0.01)  # the arrow keys and the mouse wheel still step
    spin.setValue(value)
    # napari's arrow buttons take ~60 px of the box: beside them "0.900" showed as "0.90("
    spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
    # napari's style sheet gives every spin box 70 px (+20 padding), which setMinimumWidth cannot undercut
    spin.setStyleSheet("QDoubleSpinBox { min-width: 44px; }")
    return spin


class DatasetWidget(TaskPanel):
    """Validate a dataset, split it into train/dev/test, preview augmented samples."""

    title = "Dataset"

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.dataset = None
        form = QFormLayout()
        self.dataset_edit = PathEdit("dir", "folder with images/, masks/, manifest.csv")
        self.target_combo = MicroscopeCombo(
            "dev and test come from this microscope only; train holds it too", default="C"
        )
        self.train_spin, self.dev_spin, self.test_spin = (_ratio_spin(v) for v in (0.90, 0.05, 0.05))
        ratios = QGridLayout()  # names over their boxes: on one line they made the panel 576 px wide
        for column, (label, spin) in enumerate(
            (("train", self.train_spin), ("dev", self.dev_spin), ("test", self.test_spin))
        ):
            ratios.addWidget(QLabel(label), 0, column)
            ratios.addWidget(spin, 1, column)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.grouping_check = QCheckBox("Keep near-duplicate images together")
        self.grouping_check.setChecked(True)
        self.grouping_check.setToolTip("Tiles of one field or slide never land on both sides of the split")
        self.split_edit = PathEdit("save", "<dataset>/split.csv", "CSV (*.csv)")
        self.keep_check = QCheckBox("Keep an existing split's subsets\n(new images go to train)")
        self.keep_check.setChecked(True)
        form.addRow("Dataset", self.dataset_edit)
        form.addRow("Target microscope", self.target_combo)
        form.addRow("Ratios", ratios)
        form.addRow("Seed", self.seed_spin)
        form.addRow(self.grouping_check)
        form.addRow("Split file", self.split_edit)
        form.addRow(self.keep_check)
        self.body.addLayout(form)
        buttons = QHBoxLayout()
        self.check_button = QPushButton("Check dataset")
        self.split_button = QPushButton("Split")
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.split_button)
        self.body.addLayout(buttons)

        self.counts_label = QLabel("Counts per microscope")
        self.body.addWidget(self.counts_label)
        self.counts_table = QTableWidget()
        self.counts_table.setFixedHeight(0)
        self.body.addWidget(self.counts_table)
        self.body.addWidget(QLabel("Problems, by file"))
        self.problems_list = QListWidget()
        self.problems_list.setMaximumHeight(120)
        self.body.addWidget(self.problems_list)

        preview = QGroupBox("Preview augmentation")
        pform = QFormLayout(preview)
        self.id_combo = QComboBox()
        # a DSB id is 64 characters: sized to it the panel outgrew a laptop; the tooltip shows it whole
        self.id_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.id_combo.setMinimumContentsLength(12)
        self.id_combo.currentTextChanged.connect(self.id_combo.setToolTip)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setCurrentText(TRAINING_PRESET)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 16)
        self.n_spin.setValue(4)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(32, 1024)
        self.patch_spin.setSingleStep(32)
        self.patch_spin.setValue(256)
        self.preview_button = QPushButton("Preview augmented samples")
        pform.addRow("Image", self.id_combo)
        pform.addRow("Preset", self.preset_combo)
        pform.addRow("Samples", self.n_spin)
        pform.addRow("Patch size", self.patch_spin)
        pform.addRow(self.preview_button)
        self.body.addWidget(preview)
        self.import_box = ImportBox(self)
        self.body.addWidget(self.import_box)

        self.action_buttons = [
            self.check_button, self.split_button, self.preview_button, self.import_box.import_button,
        ]  # fmt: skip
        self.check_button.clicked.connect(self.check)
        self.split_button.clicked.connect(self.split)
        self.preview_button.clicked.connect(self.preview)
        self.dataset_edit.changed.connect(self._dataset_changed)
        for combo in (self.target_combo, self.import_box.microscope_combo):
            combo.refused.connect(self.fail)
        self.say("Choose a dataset folder, then Check or Split.")

    # --- helpers -----------------------------------------------------------

    def _root(self):
        root = self.dataset_edit.path()
        if root is None:
            self.fail("choose a dataset folder first")
        return root

    def _dataset_changed(self, text: str) -> None:
        self.dataset = None
        self.id_combo.clear()
        root = self.dataset_edit.path()
        self.split_edit.edit.setPlaceholderText(str(default_split_path(root)) if root else "")
        self.offer_dataset_tags()
        chosen = self.split_edit.path()
        if chosen is not None and root is not None and split_file_owner(chosen, root) is not None:
            # The last dataset's split is not carried over: choosing one again makes it the previous split.
            self.split_edit.setText("")

    def offer_dataset_tags(self) -> None:
        """List the tags the dataset's manifest uses (D, E, ...) in the microscope boxes, after A, B, C."""
        tags = dataset_tags(self.dataset_edit.path())
        for combo in (self.target_combo, self.import_box.microscope_combo):
            combo.set_dataset_tags(tags)

    def _show_problems(self, root, problems) -> None:
        self.problems_list.clear()
        self.problems_list.addItems(problem_lines(root, problems))

    def _show_dataset(self, dataset) -> None:
        self.dataset = dataset
        current = self.id_combo.currentText()
        self.id_combo.clear()
        self.id_combo.addItems([f"{r.id} [{r.microscope}]" for r in dataset])
        index = self.id_combo.findText(current)
        self.id_combo.setCurrentIndex(max(index, 0))

    def split_config(self):
        from ..data.split import SplitConfig

        ratios = (self.train_spin.value(), self.dev_spin.value(), self.test_spin.value())
        return SplitConfig(
            target=self.target_combo.tag(), ratios=ratios,
            seed=self.seed_spin.value(), grouping=self.grouping_check.isChecked(),
        )  # fmt: skip

    # --- actions -----------------------------------------------------------

    def check(self) -> None:
        """Validate the folder, headers then pixels: problems by file, or images and cells per microscope."""
        root = self._root()
        if root is None:
            return

        def show(result) -> None:
            if self.dataset_edit.path() != root:  # changed during the check: its ids are not the new folder's
                self.say(f"{root} was checked, but the Dataset folder is now another: check that one.")
                return
            self._show_problems(root, result.problems)
            if not result.ok:
                clear_table(self.counts_table)
                self.say(f"{len(result.problems)} problem(s) in {root}: see the list.", error=True)
                return
            self._show_dataset(result.dataset)
            self.offer_dataset_tags()
            counts, cells = result.counts(), result.cells()
            rows = [["images", *counts.values(), len(result.dataset)]]
            rows.append(["cells", *(cells.get(m, 0) for m in counts), sum(cells.values())])
            fill_table(self.counts_table, ["", *counts, "total"], rows)
            self.counts_label.setText("Images and cells per microscope")
            text = f"{root}: {len(result.dataset)} images, no problem found."
            if result.pixels.empty:
                text += f" {len(result.pixels.empty)} image(s) hold no cell (they teach background)."
            tag_note = result.tag_note()
            if tag_note:
                text += f" Note: {tag_note}."
            self.say(text)

        self.start(iter_check_dataset, root, title="Check dataset", on_result=show)

    def split(self) -> None:
        """Split the dataset, write the split file and show the counts."""
        root = self._root()
        if root is None:
            return
        try:
            config = self.split_config()
        except ValueError as err:
            self.fail(str(err))
            return
        out = self.split_edit.path() or default_split_path(root)

        def show(run) -> None:
            header, rows = run.table()
            fill_table(self.counts_table, header, rows)
            self.counts_label.setText("Images per subset and microscope")
            self.problems_list.clear()
            pairs = len(run.result.pairs)
            text = f"wrote {run.path} ({len(run.result.subsets)} images"
            text += f", {pairs} near-duplicate pairs kept together)." if config.grouping else ")."
            if run.previous_used:
                source = f" (from {run.previous_path})" if run.previous_path != run.path else ""
                text += (
                    f" Kept {run.kept} earlier assignments{source}; {len(run.new_ids)} new image(s) placed."
                )
            if self.split_edit.path() is not None and run.path != self.split_edit.path():
                self.split_edit.setText(str(run.path))  # another dataset's file was only read
            if run.notes:
                text += " " + " ".join(run.notes)
            self.say(text)

        def failed(error) -> None:
            problems = getattr(error, "problems", None)
            if problems:
                self._show_problems(root, problems)
            clear_table(self.counts_table)

        self.start(
            iter_run_split, root, config, out, keep_previous=self.keep_check.isChecked(),
            title="Split", on_result=show, on_error=failed,
        )  # fmt: skip

    def preview(self) -> None:
        """Add a few augmented crops of the chosen image (and their targets) as stacked layers."""
        root = self._root()
        if root is None:
            return
        if not self.id_combo.currentText():
            self.fail("click 'Check dataset' first, then choose an image to preview")
            return
        image_id = self.id_combo.currentText().rsplit(" [", 1)[0]

        def show(result) -> None:
            images, targets = result
            name = f"augmented {image_id}"
            rgb = images.ndim == 4
            for layer_name in (name, f"{name} targets"):
                if layer_name in self.viewer.layers:
                    self.viewer.layers.remove(layer_name)
            self.viewer.add_image(images, name=name, rgb=rgb, contrast_limits=(0.0, 1.0))
            self.viewer.add_labels(
                targets, name=f"{name} targets", colormap=annotation_colormap(), opacity=0.5
            )
            self.say(f"{len(images)} augmented samples of {image_id} ({self.preset_combo.currentText()}); "
                     "move the slider to browse them.")  # fmt: skip

        self.start(
            preview_dataset_augmentations, root, image_id, self.preset_combo.currentText(),
            self.n_spin.value(), self.patch_spin.value(), self.seed_spin.value(),
            title="Preview augmentation", on_result=show,
        )  # fmt: skip
