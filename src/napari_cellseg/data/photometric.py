"""Photometric augmentation steps on intensities scaled to [0, 1] (float32).

Each function takes an image from
:func:`napari_cellseg.data.normalize.scale_intensity` (grey ``(H, W)`` or
colour ``(H, W, 3)``) and the already-drawn parameters, so that
:class:`~napari_cellseg.data.augment.Augmenter` owns all randomness. They work
in place where they can and return the result.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HED_FROM_RGB",
    "RGB_FROM_HED",
    "add_noise",
    "adjust_tone",
    "gaussian_blur",
    "haematoxylin_only",
    "luminance",
    "render_he",
    "restain",
    "smooth_field",
    "stain_jitter",
]

# Ruifrok & Johnston (2001) stain vectors, one optical-density row per stain
# (haematoxylin, eosin, DAB), as in skimage.color.rgb_from_hed.
RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]],
    dtype=np.float64,
)
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_LUMINANCE = np.array([0.299, 0.587, 0.114])
# Transmission floor: a black pixel has optical density -ln(1e-3) ~ 6.9, not infinity.
_MIN_TRANSMISSION = 1e-3
_TONE_LEVELS = 4096
_MIN_NUCLEAR_CONTRAST = 0.25  # render_he: nuclei at least this far above the background


def stain_jitter(image: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Perturb stain concentrations of a brightfield RGB image in HED space.

    Optical density ``od = -ln(rgb)`` is unmixed into haematoxylin, eosin and
    DAB concentrations, each scaled by ``scale[i]`` and shifted by
    ``shift[i]``, then mixed back (Tellez et al. 2018). The three steps are one
    3 x 3 matrix and a bias applied to the optical density.

    Parameters
    ----------
    image : (H, W, 3) float32 array in [0, 1]
        Transmitted light (white background near 1).
    scale, shift : (3,) arrays
        Per-stain factors (near 1) and offsets (near 0, optical-density units).

    Returns
    -------
    (H, W, 3) float32 array in [0, 1]
    """
    import cv2

    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"stain jitter needs an RGB (H, W, 3) image, got shape {image.shape}")
    mix = (HED_FROM_RGB * np.asarray(scale, dtype=np.float64)[None, :]) @ RGB_FROM_HED
    bias = np.asarray(shift, dtype=np.float64) @ RGB_FROM_HED
    # od' = od @ mix + bias with od = -ln(rgb), so ln(rgb') = ln(rgb) @ mix - bias:
    # one cv2.transform with the 3 x 4 matrix [mix.T | -bias] per pixel.
    affine = np.hstack([mix.T, -bias[:, None]]).astype(np.float32)
    log_rgb = cv2.log(np.maximum(image, np.float32(_MIN_TRANSMISSION)))
    out = cv2.exp(cv2.transform(log_rgb, affine))
    return np.minimum(out, 1.0, out=out)


def restain(
    image: np.ndarray,
    haematoxylin: float,
    eosin: float,
    dab: float | np.ndarray = 0.0,
    nuclear_dab: float | np.ndarray = 0.0,
    percentiles: tuple[float, float] | None = (1.0, 99.8),
) -> np.ndarray:
    """Render a brightfield RGB image with other amounts of stain, IHC included.

    Stain jitter (:func:`stain_jitter`) nudges the concentrations of an H&E
    image; this changes what the image looks like as a whole. The optical
    density is unmixed into haematoxylin, eosin and DAB (Ruifrok & Johnston)
    and mixed back as:

    - haematoxylin times ``haematoxylin`` (below 1: the pale counterstain of
      immunohistochemistry), of which the share ``nuclear_dab`` is drawn in
      DAB instead (brown nuclei, as in Ki-67 staining);
    - eosin times ``eosin`` (0: no eosin, as in haematoxylin-DAB slides);
    - the original DAB plus ``dab`` (brown cytoplasm and membranes where the
      caller puts it, for example outside the nuclei).

    The result is stretched to its ``percentiles`` again, as the normalisation
    rule would stretch such an image, so dark DAB, not the nuclei, can set its
    contrast.

    Parameters
    ----------
    image : (H, W, 3) float32 array in [0, 1]
        Transmitted light (white background near 1).
    haematoxylin, eosin : float
        Factors on the two stains' concentrations.
    dab, nuclear_dab : float or (H, W) array
        DAB concentration added (optical-density units), and the share (0-1)
        of haematoxylin rendered as DAB; arrays vary them across the image
        (see :func:`smooth_field`).
    percentiles : (low, high) or None
        Percentiles of the result mapped to 0 and 1; None keeps the
        transmitted light as it is.

    Returns
    -------
    (H, W, 3) float32 array in [0, 1]
    """
    import cv2

    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"restaining needs an RGB (H, W, 3) image, got shape {image.shape}")
    od = -cv2.log(np.maximum(image, np.float32(_MIN_TRANSMISSION)))
    stains = cv2.transform(od, HED_FROM_RGB.T.astype(np.float32))  # (H, W, 3): H, E, D
    h, e, d = (stains[..., i] for i in range(3))
    h = np.maximum(h, 0.0) * np.float32(haematoxylin)
    e_pos = np.maximum(e, 0.0)
    nuclear_dab = np.float32(nuclear_dab) if np.isscalar(nuclear_dab) else nuclear_dab.astype(np.float32)
    dab = np.float32(dab) if np.isscalar(dab) else dab.astype(np.float32)
    rendered = np.stack([h * (1 - nuclear_dab), e_pos * np.float32(eosin), d + dab + h * nuclear_dab], -1)
    od = cv2.transform(rendered, RGB_FROM_HED.T.astype(np.float32))
    out = cv2.exp(-od)
    if percentiles is None:
        return np.minimum(out, 1.0, out=out)
    return _stretch(out, percentiles, min_range=1e-6)


def _stretch(out: np.ndarray, percentiles: tuple[float, float], min_range: float) -> np.ndarray:
    """``out`` (float32) with its ``percentiles`` mapped to 0 and 1, in place, clipped; a range
    below ``min_range`` is stretched as if it were ``min_range``."""
    low, high = np.percentile(out, percentiles)
    out -= np.float32(low)
    out *= np.float32(1.0 / max(float(high - low), min_range))
    return np.clip(out, 0.0, 1.0, out=out)


def render_he(
    image: np.ndarray,
    cells: np.ndarray,
    nucleus_density: float,
    background_density: float,
    eosin: float,
    tissue: np.ndarray,
    texture: np.ndarray,
) -> np.ndarray:
    """Draw a grey image of nuclei (fluorescence or brightfield) as an H&E slide.

    The nuclear signal (the image, inverted when the nuclei are darker than
    the rest, as in brightfield) is stretched from the background's median to
    the cells' 95th percentile (at least 0.25 apart) and drawn as haematoxylin optical density, from
    ``background_density`` outside the nuclei to ``nucleus_density`` in them,
    grainy by ``texture`` (chromatin); ``tissue`` varies the background's
    haematoxylin and lays a little eosin over it. The nuclei take ``eosin``,
    as on the project's H&E images (Ruifrok & Johnston stain vectors).
    The result is stretched to its 1st and 99.8th percentiles, as
    :func:`restain` is, by at most a factor 2.

    Parameters
    ----------
    image : (H, W) float32 array in [0, 1]
    cells : (H, W) bool array
        The labels' cells: which way the nuclei differ from the rest.
    nucleus_density, background_density, eosin : float
        Optical densities (the project's H&E images: about 0.8-1.4 in nuclei,
        0.3-0.55 around them, eosin 0.3-1 in nuclei and near 0 around them).
    tissue, texture : (H, W) float arrays
        A field in [0, 1] (:func:`smooth_field`) and zero-mean grain.

    Returns
    -------
    (H, W, 3) float32 array in [0, 1]
    """
    import cv2

    if image.ndim != 2:
        raise ValueError(f"rendering as H&E needs a grey (H, W) image, got shape {image.shape}")
    if cells.shape != image.shape:
        raise ValueError(f"cells mask shape {cells.shape} does not match image shape {image.shape}")
    signal = image.astype(np.float32)
    inside, outside = signal[cells], signal[~cells]
    if inside.size and outside.size:
        bright_nuclei = inside.mean() >= outside.mean()
    else:  # no cells or no background: fluorescence has the darker background
        bright_nuclei = float(np.median(signal)) < 0.5
    if not bright_nuclei:
        signal = 1.0 - signal
    low = float(np.median(signal[~cells])) if outside.size else float(np.percentile(signal, 30))
    high = float(np.percentile(signal[cells], 95)) if inside.size else float(np.percentile(signal, 99.5))
    # a floor on the stretch: a crop of background and debris must not turn its noise into nuclei
    nuclear = np.clip((signal - low) / max(high - low, _MIN_NUCLEAR_CONTRAST), 0.0, 1.2)
    nuclear *= np.maximum(1.0 + texture, 0.0).astype(np.float32)
    background = background_density * (0.6 + 0.4 * tissue)
    haematoxylin = background + (nucleus_density - background) * np.minimum(nuclear, 1.0)
    eosin_density = eosin * (0.2 * tissue + np.minimum(nuclear, 1.0))
    stains = np.stack([haematoxylin, eosin_density, np.zeros_like(haematoxylin)], -1).astype(np.float32)
    out = cv2.exp(-cv2.transform(stains, RGB_FROM_HED.T.astype(np.float32)))
    return _stretch(out, (1.0, 99.8), min_range=0.5)  # a flat crop stays flat


def haematoxylin_only(image: np.ndarray) -> np.ndarray:
    """Transmitted light ``(..., 3)`` in [0, 1] with its eosin and DAB taken out (float32).

    The optical density is unmixed (Ruifrok & Johnston) and the haematoxylin
    drawn alone: what ``segment --haematoxylin-only`` gives the network.
    """
    density = -np.log(np.maximum(image, np.float32(_MIN_TRANSMISSION)))
    haematoxylin = np.maximum(density @ HED_FROM_RGB[:, 0].astype(np.float32), 0.0)
    return np.exp(-haematoxylin[..., None] * RGB_FROM_HED[0].astype(np.float32)).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Grey ``(H, W)`` float64 from RGB ``(H, W, 3)``: ITU-R BT.601 weights, as cv2 and PIL use."""
    return np.asarray(image)[..., :3] @ _LUMINANCE


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float = 48.0) -> np.ndarray:
    """A random field in [0, 1] that varies over about ``scale`` pixels: patches of 0 and 1.

    Noise on a coarse grid, upsampled bilinearly and pushed through a steep
    logistic around a random threshold, so that some regions get it and
    others do not (which cells of a slide take up a stain).
    """
    import cv2

    height, width = shape
    coarse = rng.standard_normal((max(2, round(height / scale) + 1), max(2, round(width / scale) + 1)))
    field = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    threshold = rng.uniform(-1.0, 1.0)
    return (1.0 / (1.0 + np.exp(-4.0 * (field - threshold)))).astype(np.float32)


def adjust_tone(image: np.ndarray, gamma: float, contrast: float, brightness: float) -> np.ndarray:
    """Gamma, then contrast around the image's mean, then brightness, as one lookup table.

    ``y = (x ** gamma - m) * contrast + m + brightness`` with ``x`` clipped to
    [0, 1] and ``m = mean(x) ** gamma``, read from a 4096-entry table (a step
    of 1/4095, far below 8-bit quantisation) because ``pow`` per pixel is slow.
    """
    levels = np.linspace(0.0, 1.0, _TONE_LEVELS)
    pivot = float(np.clip(image.mean(), 0.0, 1.0)) ** gamma
    table = ((levels**gamma - pivot) * contrast + pivot + brightness).astype(np.float32)
    index = np.clip(image, 0.0, 1.0)
    index *= np.float32(_TONE_LEVELS - 1)
    index += np.float32(0.5)
    return np.take(table, index.astype(np.uint16))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (reflect border)."""
    import cv2

    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)


def lower_resolution(image: np.ndarray, factor: float) -> np.ndarray:
    """The image as a scanner with ``factor`` times the sampling would record it, at the same size.

    Area-averaged down to ``factor`` of each side, then bilinear back up: the
    detail a low-magnification scan lacks once the nucleus size estimate has
    resampled it to the network's scale.
    """
    import cv2

    height, width = image.shape[:2]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    if factor >= 1.0 or small == (width, height):
        return image
    reduced = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (width, height), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (float in [0, 1], grey or RGB) saved as a JPEG of ``quality`` (1-100) and read back."""
    import cv2

    as_bytes = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    colour = as_bytes.ndim == 3 and as_bytes.shape[-1] == 3
    if colour:  # cv2 codes BGR: its YCbCr (and the chroma it subsamples) must see the true colours
        as_bytes = np.ascontiguousarray(as_bytes[..., ::-1])
    ok, encoded = cv2.imencode(".jpg", as_bytes, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # cv2 returns False rather than raising
        raise RuntimeError(f"JPEG encoding failed for an image of shape {image.shape}")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if colour:
        decoded = decoded[..., ::-1]
    return decoded.reshape(image.shape).astype(np.float32) * np.float32(1.0 / 255.0)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (independent per channel)."""
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    image += noise
    return image
