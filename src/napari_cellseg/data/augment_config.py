"""What the augmentation does: :class:`AugmentConfig` and its named presets.

Kept apart from :mod:`.augment` (which applies them) so the settings read as one
table; :mod:`.augment` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..config import ConfigError, JsonConfig


@dataclass
class AugmentConfig(JsonConfig):
    """Probabilities (``p_*``) and strengths of the augmentation steps.

    Attributes
    ----------
    patch_size : (height, width)
        Size of the output crops.
    p_flip : float
        Probability of a horizontal flip, and independently of a vertical one.
    p_rot90 : float
        Probability of a rotation by 90, 180 or 270 degrees (equally likely).
    p_rotate, max_angle : float
        Probability of a rotation by an angle uniform in +-``max_angle`` degrees.
    p_scale, scale_range : float, (min, max)
        Probability of a zoom by a factor log-uniform in ``scale_range``
        (> 1 magnifies).
    p_stain, stain_scale, stain_shift : float
        HED stain jitter (colour images): each stain's concentration times
        ``1 +- stain_scale``, plus ``+- stain_shift`` optical density.
    p_restain : float
        Probability of re-rendering a colour image with other stain amounts
        (:func:`~napari_cellseg.data.photometric.restain`), before the jitter:
        haematoxylin times a factor in ``restain_haematoxylin``, eosin times
        one in ``restain_eosin``, with probability ``p_dab`` DAB (up to
        ``restain_dab`` optical density) over random regions outside the
        target's cells, and with probability ``p_nuclear_dab`` the
        haematoxylin of other regions drawn as DAB (brown nuclei): H&E slides
        from other labs, and haematoxylin-DAB immunohistochemistry.
    restain_haematoxylin, restain_eosin, restain_dab : (min, max)
        Ranges of the restaining factors (uniform).
    p_dab, p_nuclear_dab : float
        Probabilities of DAB outside the cells, and of brown nuclei.
    dab_on_cells : (min, max)
        Share of that DAB that also lies over the cells (uniform; default none):
        nuclei seen through brown cytoplasm.
    p_render_he : float
        Probability of drawing a grey crop that has labels (fluorescence,
        brightfield) as an H&E slide (:func:`~napari_cellseg.data.photometric.render_he`):
        the touching nuclei of other microscopes in the target's colours.
    render_nucleus, render_background, render_eosin : (min, max)
        Ranges (uniform) of its optical densities: haematoxylin in the nuclei
        and around them, and eosin.
    render_texture : float
        Largest strength of its chromatin grain (uniform from 0).
    p_grey : float
        Probability of turning a colour image grey (its luminance in all
        three channels, as the network sees a grey image): stains whose
        colour it has never seen, and H&E slides saved in grey.
    p_haematoxylin_only : float
        Probability of giving a colour crop as ``segment --haematoxylin-only``
        gives a slide to the network (:func:`~napari_cellseg.inference.stains.haematoxylin_only`).
    p_blur, blur_sigma : float
        Gaussian blur, sigma uniform in (0, ``blur_sigma``] pixels.
    p_lowres, lowres_range : float, (min, max)
        Probability of losing resolution: the crop sampled down to a factor
        uniform in ``lowres_range`` of its size and back up
        (:func:`~napari_cellseg.data.photometric.lower_resolution`), as a
        low-magnification scan looks once resampled to the nucleus size.
    p_jpeg, jpeg_quality : float, (min, max)
        Probability of JPEG compression at a quality uniform in ``jpeg_quality``
        (images exported from slide scanners and microscope software).
    p_gamma, gamma : float
        Gamma ``exp(+-gamma)``.
    p_contrast, contrast, brightness : float
        Contrast ``1 +- contrast`` around the mean, brightness ``+- brightness``.
    p_noise, noise_std : float
        Gaussian noise, standard deviation uniform in [0, ``noise_std``].
    """

    patch_size: tuple[int, int] = (256, 256)
    p_flip: float = 0.5
    p_rot90: float = 0.75
    p_rotate: float = 0.3
    max_angle: float = 45.0
    p_scale: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.33)
    p_stain: float = 0.5
    stain_scale: float = 0.1
    stain_shift: float = 0.05
    p_restain: float = 0.0  # on in the "stains" and "strong" presets
    restain_haematoxylin: tuple[float, float] = (0.3, 1.2)
    restain_eosin: tuple[float, float] = (0.0, 1.2)
    restain_dab: tuple[float, float] = (0.3, 2.0)
    p_dab: float = 0.6
    dab_on_cells: tuple[float, float] = (0.0, 0.0)
    p_nuclear_dab: float = 0.3
    p_grey: float = 0.0  # likewise
    p_render_he: float = 0.0  # on in the "rendered" preset (experiments.md step 19)
    render_nucleus: tuple[float, float] = (0.75, 1.45)
    render_background: tuple[float, float] = (0.2, 0.55)
    render_eosin: tuple[float, float] = (0.2, 0.9)
    render_texture: float = 0.3
    p_haematoxylin_only: float = 0.0
    p_blur: float = 0.2
    blur_sigma: float = 1.0
    p_lowres: float = 0.0  # on in the "scanners" preset
    lowres_range: tuple[float, float] = (0.35, 1.0)
    p_gamma: float = 0.3
    gamma: float = 0.3
    p_contrast: float = 0.5
    contrast: float = 0.2
    brightness: float = 0.1
    p_noise: float = 0.3
    noise_std: float = 0.04
    p_jpeg: float = 0.0  # likewise
    jpeg_quality: tuple[float, float] = (20.0, 90.0)

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(v) for v in self.patch_size)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        for name in (
            "restain_haematoxylin", "restain_eosin", "restain_dab", "dab_on_cells",
            "render_nucleus", "render_background", "render_eosin",
        ):  # fmt: skip
            pair = tuple(float(v) for v in getattr(self, name))
            if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
                raise ConfigError(f"{name} must be (min, max) with 0 <= min <= max, got {pair}")
            setattr(self, name, pair)
        if self.dab_on_cells[1] > 1:
            raise ConfigError(f"dab_on_cells is a share in [0, 1], got {self.dab_on_cells}")
        if len(self.patch_size) != 2 or min(self.patch_size) < 1:
            raise ConfigError(f"patch_size must be two positive integers, got {self.patch_size}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{f.name} is a probability in [0, 1], got {value}")
            if isinstance(value, float) and value < 0:
                raise ConfigError(f"{f.name} must be >= 0, got {value}")
        low, high = self.scale_range
        if len(self.scale_range) != 2 or not 0 < low <= high:
            raise ConfigError(f"scale_range must be (min, max) with 0 < min <= max, got {self.scale_range}")
        self.lowres_range = tuple(float(v) for v in self.lowres_range)
        if len(self.lowres_range) != 2 or not 0 < self.lowres_range[0] <= self.lowres_range[1] <= 1:
            raise ConfigError(
                f"lowres_range must be (min, max) with 0 < min <= max <= 1, got {self.lowres_range}"
            )
        self.jpeg_quality = tuple(float(v) for v in self.jpeg_quality)
        if len(self.jpeg_quality) != 2 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ConfigError(
                f"jpeg_quality must be (min, max) with 1 <= min <= max <= 100, got {self.jpeg_quality}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AugmentConfig:
        """A named preset (``none``, ``light``, ``default``, ``stains``, ``rendered``, ``scanners``,
        ``strong``) with overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown augmentation preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(cls(), **{**PRESETS[name], **overrides})


_ALL_OFF = {
    f"p_{s}": 0.0
    for s in (
        "flip rot90 rotate scale restain render_he grey stain blur lowres gamma contrast noise jpeg".split()
    )
}
PRESETS: dict[str, dict[str, Any]] = {
    "none": dict(_ALL_OFF),  # crop only
    "light": {
        **_ALL_OFF,
        **dict(p_flip=0.5, p_rot90=0.75, p_scale=0.3, scale_range=(0.87, 1.15)),
        **dict(p_stain=0.3, stain_scale=0.05, stain_shift=0.02, p_blur=0.1, blur_sigma=0.7),
        **dict(p_gamma=0.2, gamma=0.15, p_contrast=0.3, contrast=0.1, brightness=0.05),
        **dict(p_noise=0.2, noise_std=0.02),
    },
    "default": {},
    # "default" plus restaining and grey (experiments.md step 13): TrainConfig's default
    # since then. "default" keeps its meaning, so older runs' configs still say what ran.
    "stains": dict(p_restain=0.3, p_grey=0.1),
    # "stains" plus grey crops of other microscopes drawn as H&E (experiments.md step 19)
    "rendered": dict(p_restain=0.3, p_grey=0.1, p_render_he=0.5),
    # "stains" plus low-resolution and JPEG-compressed crops (experiments.md step 14)
    "scanners": dict(p_restain=0.3, p_grey=0.1, p_lowres=0.2, p_jpeg=0.2),
    "strong": {
        **dict(p_restain=0.5, p_grey=0.2),
        **dict(p_rotate=0.5, max_angle=180.0, p_scale=0.7, scale_range=(0.6, 1.67)),
        **dict(p_stain=0.7, stain_scale=0.2, stain_shift=0.1, p_blur=0.3, blur_sigma=1.5),
        **dict(p_gamma=0.5, gamma=0.5, p_contrast=0.7, contrast=0.35, brightness=0.15),
        **dict(p_noise=0.5, noise_std=0.08),
    },
}


TRAINING_PRESET = "stains"  # what training uses unless told otherwise
