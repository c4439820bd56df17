"""Microscope tags the panels offer: A, B, C, the tags a dataset already uses, or one typed.

A typed tag follows the manifest's own rule (:func:`~napari_cellseg.classes.check_microscope_tag`),
so a tag the user types is refused, saying why, before anything is saved, imported or split.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from ..classes import MICROSCOPES, check_microscope_tag

NO_TAG = "it has no tag yet"


def tag_choices(*used: Iterable[str]) -> tuple[str, ...]:
    """A, B, C, then every other valid tag of ``used`` (sorted, each once): what a tag list offers."""
    others = {
        tag for tags in used for tag in tags if tag not in MICROSCOPES and not check_microscope_tag(tag)
    }
    return (*MICROSCOPES, *sorted(others))


def dataset_tags(root: str | os.PathLike | None) -> tuple[str, ...]:
    """The valid tags that the manifest of the dataset folder ``root`` uses, sorted.

    Empty without a folder or a readable manifest: a list then offers A, B, C. Rows with a
    tag that is no tag are left out (``napari-cellseg check`` names them).
    """
    from ..data.manifest import MANIFEST_NAME, read_manifest

    if root is None:
        return ()
    try:
        _, rows, _ = read_manifest(Path(root).expanduser() / MANIFEST_NAME, None)
    except (OSError, ValueError, csv.Error):  # a file that is no CSV: nothing to offer from it
        return ()
    return tuple(sorted({row.microscope for row in rows}))


def case_variant_note(tags: Iterable[str]) -> str:
    """A note naming tags that differ only in case (``c`` beside ``C``), or "".

    Each is a microscope of its own (tags are case-sensitive), which is seldom meant.
    """
    by_folded: dict[str, set[str]] = {}
    for tag in tags:
        by_folded.setdefault(tag.casefold(), set()).add(tag)
    variants = [
        " and ".join(repr(t) for t in sorted(group)) for group in by_folded.values() if len(group) > 1
    ]
    if not variants:
        return ""
    return (
        f"the tags {'; '.join(variants)} differ only in case: each counts as a microscope of its own "
        "(tags are case-sensitive); if they are one microscope, give its images one tag in manifest.csv"
    )


def parse_tag(text: str | None) -> str:
    """``text`` without surrounding blanks, when it is a microscope tag; else ``ValueError`` saying why."""
    tag = (text or "").strip()
    why = check_microscope_tag(tag) if tag else "no microscope tag: choose A, B, C or type a tag of your own"
    if why:
        raise ValueError(why)
    return tag


def tag_to_save(tag: str | None) -> str:
    """The tag an image is saved with, or a ``ValueError`` asking to tag it (untagged or a bad tag)."""
    why = check_microscope_tag(tag) if tag else NO_TAG
    if why:
        raise ValueError(
            f"tag the image with its microscope (A, B, C or a tag of your own) before saving: {why}"
        )
    return tag
