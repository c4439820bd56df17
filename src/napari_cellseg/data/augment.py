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
from typing import Any

import numpy as np

from . import photometric
from .augment_config import PRESETS, TRAINING_PRESET, AugmentConfig

__all__ = ["PRESETS", "TRAINING_PRESET", "AugmentConfig", "Augmenter", "preview_augmentations"]


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
        if c.p_render_he > 0 and image.ndim == 2 and target is not None and rng.random() < c.p_render_he:
            image = self._render_he(image, target, rng)
        if c.p_restain > 0 and rng.random() < c.p_restain and image.ndim == 3:
            image = self._restain(image, target, rng)
        if c.p_haematoxylin_only > 0 and rng.random() < c.p_haematoxylin_only and image.ndim == 3:
            image = photometric.haematoxylin_only(image)
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

    def _render_he(self, image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        grain = photometric.gaussian_blur(rng.standard_normal(image.shape, dtype=np.float32), 0.8)
        grain *= np.float32(rng.uniform(0.0, c.render_texture) / max(float(grain.std()), 1e-6))
        return photometric.render_he(
            image, target > 0, rng.uniform(*c.render_nucleus), rng.uniform(*c.render_background),
            rng.uniform(*c.render_eosin), photometric.gaussian_blur(photometric.smooth_field(rng, image.shape), 6.0),
            grain,
        )  # fmt: skip

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
