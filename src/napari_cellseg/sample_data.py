"""The CC0 DSB 2018 demo images shipped with the package, tagged by microscope.

No torch, napari or Qt here: the functions return napari ``LayerData`` tuples.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).parent / "sample_data"
CREDIT = "DSB 2018 stage 1 (BBBC038, Broad Institute), CC0"


@dataclass(frozen=True)
class Sample:
    key: str
    id: str
    microscope: str
    modality: str
    n_nuclei: int

    @property
    def image_path(self) -> Path:
        return SAMPLE_DIR / "images" / f"{self.id}.png"

    @property
    def mask_path(self) -> Path:
        return SAMPLE_DIR / "masks" / f"{self.id}.tif"

    @property
    def title(self) -> str:
        return f"[{self.microscope}] {self.modality.replace('_', ' ')} ({self.n_nuclei} nuclei)"


# Stable keys, in the order the manifest contributes them.
_KEYS = {
    "708eb41a3fc8f2b6cd1f529cdf38dc4ad5d5f00ad30bdcba92884f37ff78d614": "c_histology_1",
    "52a6b8ae4c8e0a8a07a31b8e3f401d8811bf1942969c198e51dfcbd98520aa60": "c_histology_2",
    "2a1a294e21d76efd0399e4eb321b45f44f7510911acd92c988480195c5b4c812": "b_brightfield",
    "db45946a4412a2137674ec075b6892ccd682b77826aba618210569bbc65cf2b0": "a_fluorescence_1",
    "483b89aa683542f1c63e62f5f71ae8ae1f959caf1c379cd61230a71cd1036732": "a_fluorescence_2",
    "a6593632dcbbe4c9e9429a9cec573d26fd8c91a47d554d315f25e7c2e0280ee3": "a_fluorescence_3",
}


@cache
def list_samples() -> dict[str, Sample]:
    """All shipped samples by key (``c_histology_1``, ``b_brightfield``...)."""
    samples = {}
    with open(SAMPLE_DIR / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            key = _KEYS[row["id"]]
            samples[key] = Sample(key, row["id"], row["microscope"], row["modality"], int(row["n_nuclei"]))
    return dict(sorted(samples.items(), key=lambda kv: list(_KEYS.values()).index(kv[0])))


def load_sample(key: str) -> tuple[np.ndarray, np.ndarray, Sample]:
    """Return ``(image, instance_labels, sample)`` for a sample key."""
    from .io import collapse_grey_rgb, read_image

    samples = list_samples()
    if key not in samples:
        raise KeyError(f"unknown sample {key!r}; choose from {sorted(samples)}")
    sample = samples[key]
    image = collapse_grey_rgb(read_image(sample.image_path))
    return image, read_image(sample.mask_path), sample


def sample_layers(key: str) -> list[tuple]:
    """napari LayerData for a sample: the image and its expert mask."""
    image, mask, sample = load_sample(key)
    meta = {"microscope": sample.microscope, "modality": sample.modality, "source": CREDIT, "id": sample.id}
    rgb = image.ndim == 3 and image.shape[-1] == 3
    return [
        (image, {"name": sample.title, "metadata": dict(meta), "rgb": rgb}, "image"),
        (
            mask,
            {"name": f"[{sample.microscope}] expert mask", "metadata": dict(meta), "opacity": 0.5},
            "labels",
        ),
    ]


def c_histology_1():
    return sample_layers("c_histology_1")


def c_histology_2():
    return sample_layers("c_histology_2")


def b_brightfield():
    return sample_layers("b_brightfield")


def a_fluorescence_1():
    return sample_layers("a_fluorescence_1")


def a_fluorescence_2():
    return sample_layers("a_fluorescence_2")


def a_fluorescence_3():
    return sample_layers("a_fluorescence_3")
