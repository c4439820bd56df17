"""Joint image/target augmentation: one affine warp, then photometric steps.

Where it sits
-------------
Augmentation works on intensities already scaled to ``[0, 1]`` by
:func:`napari_cellseg.data.normalize.scale_intensity` (with the *whole*
image's percentiles) and before :func:`~napari_cellseg.data.normalize.standardize`,
because contrast, gamma, noise and stain jitter are defined on ``[0, 1]``
(stain jitter on transmitted light, white = 1). Training therefore runs
``scale_intensity -> Augmenter -> standardize``; inference skips the middle.

Geometry
--------
Random crop to ``patch_size``, scale jitter, flips, rotation by 90 degree
steps and by an arbitrary angle are composed into ONE affine map and applied
with one ``cv2.warpAffine`` per array: bilinear for the image, nearest
neighbour for the target, so the target keeps exactly the values it had (no
class or label is invented). Both use ``BORDER_REFLECT_101``, so wherever the
warp reaches outside the image (small images, corners of rotated crops) image
and target show the same mirrored content; no ignore index is needed. The
crop centre is drawn so that the rotated, scaled patch stays inside the image
when it fits. Without arbitrary rotation or scale the warp is an exact pixel
permutation.

The target may be the 3-class target or the instance labels (uint8, uint16 or
int32); augmenting instance labels and calling
:func:`~napari_cellseg.data.targets.instances_to_targets` afterwards keeps the
boundary exactly ``thickness`` pixels wide at every scale.

Photometric steps (in this order, each with its probability): restaining,
grey and stain jitter (colour images only), Gaussian blur, a lower resolution,
gamma + contrast + brightness, Gaussian noise, JPEG compression; the result is
clipped to ``[0, 1]`` like the normalised input.

Determinism: all randomness comes from the ``numpy.random.Generator`` passed
in, so the same seed gives identical outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..config import ConfigError, JsonConfig
from . import photometric

__all__ = ["PRESETS", "TRAINING_PRESET", "AugmentConfig", "Augmenter", "preview_augmentations"]


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
    p_grey : float
        Probability of turning a colour image grey (its luminance in all
        three channels, as the network sees a grey image): stains whose
        colour it has never seen, and H&E slides saved in grey.
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
        for name in ("restain_haematoxylin", "restain_eosin", "restain_dab", "dab_on_cells"):
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
        """A named preset (``none``, ``light``, ``default``, ``stains``, ``scanners``, ``strong``) with overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown augmentation preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(cls(), **{**PRESETS[name], **overrides})


_ALL_OFF = {
    f"p_{s}": 0.0
    for s in ("flip rot90 rotate scale restain grey stain blur lowres gamma contrast noise jpeg".split())
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


class Augmenter:
    """Apply an :class:`AugmentConfig` to (image, target) pairs.

    Examples
    --------
    >>> import numpy as np
    >>> augment = Augmenter.preset("default", patch_size=(64, 64))
    >>> image, target = np.random.rand(100, 120).astype(np.float32), np.zeros((100, 120), np.uint8)
    >>> out_image, out_target = augment(image, target, np.random.default_rng(0))
    >>> out_image.shape, out_target.shape, out_target.dtype
    ((64, 64), (64, 64), dtype('uint8'))
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Augmenter:
        return cls(AugmentConfig.preset(name, **overrides))

    def __call__(
        self,
        image: np.ndarray,
        target: np.ndarray | None,
        rng: np.random.Generator | int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment one pair.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) float array in [0, 1]
            From :func:`~napari_cellseg.data.normalize.scale_intensity`.
        target : (H, W) integer array or None
            3-class target or instance labels; warped with nearest neighbour.
        rng : numpy.random.Generator or int seed

        Returns
        -------
        image : float32 array, ``patch_size`` (+ channels), in [0, 1]
        target : array of ``patch_size`` and the target's dtype, or None
        """
        image, target = _check_pair(image, target)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        matrix = self._draw_geometry(rng, image.shape[:2])
        image, target = _warp(image, target, matrix, self.config.patch_size)
        return self._photometric(image, target, rng), target

    def _draw_geometry(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """The 2 x 3 map from output pixel (x, y) to source pixel (x, y)."""
        c = self.config
        flip_x = rng.random() < c.p_flip
        flip_y = rng.random() < c.p_flip
        quarter_turns = int(rng.integers(1, 4)) if rng.random() < c.p_rot90 else 0
        angle = rng.uniform(-c.max_angle, c.max_angle) if rng.random() < c.p_rotate else 0.0
        log_lo, log_hi = np.log(c.scale_range)
        scale = math.exp(rng.uniform(log_lo, log_hi)) if rng.random() < c.p_scale else 1.0
        flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
        quarter = np.round(_rotation(90.0 * quarter_turns))  # exact 0/+-1 entries
        linear = _rotation(angle) @ quarter @ flips / scale
        out_h, out_w = c.patch_size
        out_centre = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
        half = np.abs(linear) @ out_centre  # half-extent of the patch in the source
        centre = []
        for size, h in zip((shape[1], shape[0]), half):
            room = (size - 1) - 2 * h
            centre.append(h + rng.uniform(0.0, room) if room > 0 else (size - 1) / 2)
        offset = np.asarray(centre) - linear @ out_centre
        if angle == 0.0 and scale == 1.0:
            offset = np.round(offset)  # integer shift: an exact pixel permutation
        return np.hstack([linear, offset[:, None]]).astype(np.float64)

    def _photometric(
        self, image: np.ndarray, target: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray:
        c = self.config
        # Steps added later draw only when on, so older settings give the crops they gave.
        if c.p_restain > 0 and rng.random() < c.p_restain and image.ndim == 3:
            image = self._restain(image, target, rng)
        if c.p_grey > 0 and rng.random() < c.p_grey and image.ndim == 3:
            image = np.repeat(photometric.luminance(image)[..., None], 3, axis=-1).astype(np.float32)
        if rng.random() < c.p_stain and image.ndim == 3:
            scale = 1.0 + rng.uniform(-c.stain_scale, c.stain_scale, 3)
            image = photometric.stain_jitter(image, scale, rng.uniform(-c.stain_shift, c.stain_shift, 3))
        if rng.random() < c.p_blur and c.blur_sigma > 0:
            image = photometric.gaussian_blur(image, rng.uniform(0.0, c.blur_sigma))
        if c.p_lowres > 0 and rng.random() < c.p_lowres:
            image = photometric.lower_resolution(image, rng.uniform(*c.lowres_range))
        gamma = math.exp(rng.uniform(-c.gamma, c.gamma)) if rng.random() < c.p_gamma else 1.0
        if rng.random() < c.p_contrast:
            contrast = 1.0 + rng.uniform(-c.contrast, c.contrast)
            brightness = rng.uniform(-c.brightness, c.brightness)
        else:
            contrast, brightness = 1.0, 0.0
        if (gamma, contrast, brightness) != (1.0, 1.0, 0.0):
            image = photometric.adjust_tone(image, gamma, contrast, brightness)
        if rng.random() < c.p_noise:
            image = photometric.add_noise(image, rng.uniform(0.0, c.noise_std), rng)
        image = np.clip(image, 0.0, 1.0, out=image)
        if c.p_jpeg > 0 and rng.random() < c.p_jpeg:
            image = photometric.jpeg_compress(image, round(rng.uniform(*c.jpeg_quality)))
        return image

    def _restain(self, image: np.ndarray, target: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        haematoxylin = rng.uniform(*c.restain_haematoxylin)
        eosin = rng.uniform(*c.restain_eosin)
        shape = image.shape[:2]
        dab = 0.0
        if rng.random() < c.p_dab:
            # DAB on cytoplasm and membranes: regions of the tissue, never the nuclei.
            dab = rng.uniform(*c.restain_dab) * photometric.smooth_field(rng, shape)
            if target is not None:  # soft edges: the brown must not trace the masks' outlines
                outside = photometric.gaussian_blur((target == 0).astype(np.float32), 2.0)
                if c.dab_on_cells[1] > 0:  # some over the nuclei too, as in thick sections
                    share = rng.uniform(*c.dab_on_cells)
                    outside = share + (1.0 - share) * outside
                dab *= outside
        nuclear = photometric.smooth_field(rng, shape) if rng.random() < c.p_nuclear_dab else 0.0
        return photometric.restain(image, haematoxylin, eosin, dab, nuclear)


# Label dtypes cv2.warpAffine handles as they are.
_WARPABLE = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.int32))


def _rotation(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _check_pair(image: Any, target: Any) -> tuple[np.ndarray, np.ndarray | None]:
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {image.shape}")
    if image.dtype.kind != "f":
        raise ValueError(
            f"the augmenter works on intensities scaled to [0, 1]: pass "
            f"normalize.scale_intensity(image) (got dtype {image.dtype}, shape {image.shape})"
        )
    image = np.ascontiguousarray(image, dtype=np.float32)
    if target is None:
        return image, None
    target = np.asarray(target)
    if target.shape != image.shape[:2]:
        raise ValueError(f"target shape {target.shape} does not match image shape {image.shape}")
    if target.dtype.kind not in "uib":
        raise ValueError(f"target must be an integer label array, got dtype {target.dtype}")
    if target.dtype not in _WARPABLE and target.dtype.kind != "b" and target.size:
        if target.min() < 0 or target.max() > np.iinfo(np.int32).max:
            raise ValueError(
                f"target values must lie in [0, 2**31) (dtype {target.dtype}, "
                f"range {target.min()}..{target.max()})"
            )
    return image, target


def _warp(
    image: np.ndarray, target: np.ndarray | None, matrix: np.ndarray, patch_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    size = (patch_size[1], patch_size[0])
    flags = cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_REFLECT_101
    out = cv2.warpAffine(image, matrix, size, flags=flags | cv2.INTER_LINEAR, borderMode=border)
    if target is None:
        return out, None
    dtype = target.dtype
    if dtype in _WARPABLE:
        warpable = target
    else:  # cv2 warps neither bool nor 32/64-bit unsigned labels
        warpable = target.view(np.uint8) if dtype.kind == "b" else target.astype(np.int32)
    warped = cv2.warpAffine(warpable, matrix, size, flags=flags | cv2.INTER_NEAREST, borderMode=border)
    return out, warped.astype(dtype, copy=False)


def preview_augmentations(
    image: np.ndarray,
    target: np.ndarray | None,
    n: int = 4,
    config: AugmentConfig | None = None,
    seed: int = 0,
    normalization: Any = None,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """A few augmented samples for the GUI to preview.

    Parameters
    ----------
    image : (H, W) or (H, W, 3|4) array
        Raw (integer) images are first scaled with
        :func:`~napari_cellseg.data.normalize.scale_intensity` and
        ``normalization``; float images are taken as already in [0, 1].
    target : (H, W) integer array or None
    n : int
        Number of samples.
    config : AugmentConfig, optional
    seed : int
        Same seed, same samples.
    normalization : NormalizationConfig, optional

    Returns
    -------
    list of (image, target)
        Float32 images in [0, 1] of ``config.patch_size``, and their targets.
    """
    from .normalize import scale_intensity

    image = np.asarray(image)
    if image.dtype.kind != "f" or (image.ndim == 3 and image.shape[-1] != 3):
        image = scale_intensity(image, normalization)
    augmenter = Augmenter(config)
    rng = np.random.default_rng(seed)
    return [augmenter(image, target, rng) for _ in range(int(n))]
