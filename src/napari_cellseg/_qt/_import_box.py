"""The Dataset panel's "Add images outlined in QuPath" box (the work is in data.outlines_import)."""

from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QGroupBox, QPushButton

from ._common import PathEdit
from ._microscope_combo import MicroscopeCombo


class ImportBox(QGroupBox):
    """Images and their QuPath GeoJSON outlines into the panel's dataset folder, as masks."""

    def __init__(self, panel, parent=None):
        super().__init__("Add images outlined in QuPath", parent)
        self.panel = panel
        form = QFormLayout(self)
        self.images_edit = PathEdit("dir", "a folder of images")
        self.outlines_edit = PathEdit("dir", "default: beside the images")
        self.outlines_edit.setToolTip(
            "QuPath: File > Export objects as GeoJSON, one <image name>.geojson per image; "
            "Fiji: ROI Manager > More > Save, as <image name>_rois.zip"
        )
        self.microscope_combo = MicroscopeCombo("The microscope that took these images", default="C")
        self.import_button = QPushButton("Add to the dataset")
        self.import_button.setToolTip(
            "Each image with a .geojson becomes a dataset image with its cells as masks; "
            "images already in the dataset are left as they are"
        )
        form.addRow("Images", self.images_edit)
        form.addRow("Outlines", self.outlines_edit)
        form.addRow("Microscope", self.microscope_combo)
        form.addRow(self.import_button)
        self.import_button.clicked.connect(self.import_outlines)

    def import_outlines(self) -> None:
        """Add the chosen images and their outlines to the dataset, then list what was left out
        and what the import noticed about the images added."""
        from ..data.outlines_import import iter_import_outlines

        panel = self.panel
        root = panel._root()
        if root is None:
            return
        images = self.images_edit.path()
        if images is None or not images.is_dir():
            panel.fail("choose the folder of images that were outlined in QuPath first")
            return
        outlines = self.outlines_edit.path()
        try:  # a typed tag that is no tag: refused before any image is read
            microscope = self.microscope_combo.tag()
        except ValueError as err:
            panel.fail(str(err))
            return

        def show(reports) -> None:
            added = [r for r in reports if r.status == "added"]
            # another image given a listed id is left out (rename it); the listed image itself is kept
            kept = [r for r in reports if r.status == "exists" and r.same_image]
            left_out = len(reports) - len(added) - len(kept)
            panel._show_problems(root, [(r.image_id, line) for r in reports if (line := _line(r))])
            text = f"Added {len(added)} image(s) with {sum(r.cells for r in added)} cells to {root}."
            if any(r.message for r in added):
                text += f" Notes on {sum(bool(r.message) for r in added)} of them: see the list."
            if kept:
                text += f" {len(kept)} already in the dataset, left unchanged: see the list."
            if left_out:
                text += f" {left_out} left out: see the list."
            panel.say(text + " Check dataset, then Split.", error=bool(left_out) and not added)
            panel.offer_dataset_tags()  # a new tag is the dataset's now

        panel.start(
            iter_import_outlines, [images], outlines, root, microscope,
            title="Add QuPath outlines", on_result=show,
        )  # fmt: skip


def _line(report) -> str | None:
    """An image's line in the panel's list, None for nothing to say: why it was left out, or what
    the import noticed about it (outlines skipped or outside it, the new id of a renamed file),
    as the command line prints it; for an image already in the dataset, the file it was imported
    from and how to replace it in the panels (the import never overwrites: no --overwrite here)."""
    if report.status == "added":
        return f"added, {report.cells} cells: {report.message}" if report.message else None
    if report.status == "exists" and report.same_image:
        return f"{report.message}: left as it is; {_replace_advice(report.image_id)}"
    if report.status == "exists":  # another image under a listed id: the message says to rename it
        return report.message
    return f"{report.status}: {report.message}"


def _replace_advice(image_id: str) -> str:
    """How to replace a dataset image with new outlines from the panels: Annotate's 'Replace'."""
    return (
        "to replace it, open the image and its outlines in napari, choose the outlines as Annotate's "
        f"Cells and save them as {image_id!r} with 'Replace the saved image if this id exists' ticked"
    )
