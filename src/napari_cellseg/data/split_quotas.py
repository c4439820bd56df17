"""Dev and test quotas of a split, and the checked advice of a split that cannot be made.

The quotas are shares of the whole pool, taken from the target microscope only;
train must keep more target images than dev and than test (:func:`train_fits`).
A request that breaks this is refused with the target images it would need and
ratios that would split the images as they are (:func:`check_quotas`); a split
whose groups are all too large for dev or test is refused naming what holds those
groups together (:func:`no_group_fits`). Every count or ratio offered is checked
against these same rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from .grouping import merge_groups
from .splitfile import SplitError


def _quota(ratio: float, pool: int) -> int:
    """Images for a ratio of the pool, rounded half up; at least one for a positive ratio."""
    return max(1, math.floor(ratio * pool + 0.5)) if ratio > 0 else 0


def check_ratios(ratios) -> tuple[float, float, float]:
    """(train, dev, test) as floats, or SplitError saying what is wrong."""
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3:
        raise SplitError(f"give three ratios (train dev test), got {len(ratios)}: {ratios}")
    if not all(math.isfinite(r) and 0 <= r < 1 for r in ratios) or ratios[0] <= 0:
        raise SplitError(f"ratios must lie in [0, 1) with train > 0, got {ratios}")
    if abs(sum(ratios) - 1) > 1e-6:
        raise SplitError(f"ratios must sum to 1, got {ratios} (sum {sum(ratios):.6g})")
    return ratios


def quotas_of(ratios, pool: int) -> dict[str, int]:
    """Dev and test images for (train, dev, test) ratios of a pool."""
    return {"dev": _quota(ratios[1], pool), "test": _quota(ratios[2], pool)}


def train_fits(n_target: int, quotas: Mapping[str, int]) -> bool:
    """The count rule: the target images left for train outnumber dev's and test's."""
    return n_target - quotas["dev"] - quotas["test"] > max(quotas["dev"], quotas["test"])


def _images_needed(n_target: int, pool: int, ratios) -> int | None:
    """Fewest target images (the other images as they are) that fit these ratios; None if none do.

    Added images grow the pool and so the quotas: the count is searched, not
    derived from today's quotas.
    """
    other = pool - n_target
    share = ratios[1] + ratios[2] + max(ratios[1], ratios[2])  # of the pool, taken from target images
    if share >= 1:
        return None
    # A quota lies within [r * pool - 0.5, r * pool + 1]: only this window can hold the answer.
    low = max(n_target, math.floor((share * other - 1.5) / (1 - share)))
    high = math.floor((share * other + 3) / (1 - share)) + 2
    for n in range(low, min(high, low + 100_000) + 1):
        if train_fits(n, quotas_of(ratios, other + n)):
            return n
    # A window too wide to scan (train barely above dev/test): the bound itself, if it fits.
    return high if train_fits(high, quotas_of(ratios, other + high)) else None


def _smaller_ratios(n_target: int, pool: int, ratios) -> tuple[float, float, float] | None:
    """The largest dev/test ratios (2 decimals, else 3: what the panel takes) that fit, or None.

    Dev and test are capped alike (a zero ratio stays zero); failing that, the
    test ratio is dropped to 0. Each candidate passes the very checks a split does.
    """
    _, dev, test = ratios
    for test_kept in (True, False) if test else (True,):
        for decimals in (2, 3):
            step = 10.0**-decimals
            for k in range(math.ceil(max(dev, test) / step), 0, -1):
                cap = round(k * step, decimals)
                d, t = min(dev, cap), min(test, cap) if test_kept else 0.0
                candidate = (round(1 - d - t, 10), d, t)
                if candidate == tuple(ratios):
                    continue
                try:
                    check_ratios(candidate)
                except SplitError:
                    continue
                if train_fits(n_target, quotas_of(candidate, pool)):
                    return candidate
    return None


def check_quotas(target: str, n_target: int, ratios, pool: int) -> None:
    """Refuse quotas that leave train too few target images, with only advice that was checked."""
    quotas = quotas_of(ratios, pool)
    if train_fits(n_target, quotas):
        return
    dev, test = quotas["dev"], quotas["test"]
    text = (
        f"target {target!r} has {n_target} images: dev {dev} and test {test} "
        f"({ratios[1]:g} and {ratios[2]:g} of {pool}) leave {max(n_target - dev - test, 0)} for train, "
        f"but train must hold more {target} images than dev and than test. "
    )
    need = _images_needed(n_target, pool, ratios)
    smaller = _smaller_ratios(n_target, pool, ratios)
    if smaller is None and n_target < 3:  # one in dev or test and two in train: the least any split takes
        text += f"No ratios can split {n_target} {target} image{'s' * (n_target != 1)}: "
    if need is None:
        advice = f"more {target} images cannot help with these ratios"
    else:
        advice = f"this needs at least {need} {target} images"
        no_test = _images_needed(n_target, pool, (ratios[0] + ratios[2], ratios[1], 0.0)) if test else None
        if no_test is not None and no_test < need:
            advice += f" ({no_test} without a test set)"
    text += advice[0].upper() + advice[1:] if text.endswith(". ") else advice
    if smaller is not None:
        fit = quotas_of(smaller, pool)
        kind = (
            "a test ratio of 0 (no test set)" if test and not smaller[2]
            else "smaller dev/test ratios" if test else "a smaller dev ratio"
        )  # fmt: skip
        text += ": use " if need is None else ", or "
        text += (
            f"{kind}, e.g. ratios {smaller[0]:g} {smaller[1]:g} {smaller[2]:g} (dev {fit['dev']}, "
            f"test {fit['test']}, train {n_target - fit['dev'] - fit['test']} {target} images)"
        )
    raise SplitError(text)


def no_group_fits(
    target: str,
    subset: str,
    quotas: Mapping[str, int],
    eligible: Mapping[str, list[str]],
    explicit: Mapping[str, str | None],
    ratios,
    pool: int,
    near_duplicates: bool,
    splits: Callable[[tuple[float, float, float], bool], bool],
) -> str:
    """Why no group of target images fits in ``subset``, and what would help.

    ``eligible`` are the groups made of target images only (key -> ids); ``explicit``
    the manifest's group of each target image; ``near_duplicates``, whether the search
    for them was on. ``splits(ratios, near_duplicates)`` says whether a fresh split with
    those ratios, with or without that search, would be made. ``--no-grouping`` is
    suggested only where the search was on and turning it off gives a split; a group that
    the manifest's ``group`` column holds together is named instead, with the advice to
    edit that column or add images from other slides (``--no-grouping`` keeps manifest
    groups). Larger ratios are offered only where they give a split.
    """
    text = f"no group of {target} images fits in {subset} ({quotas[subset]} images): "
    if not eligible:
        held = sorted({g for g in explicit.values() if g})
        shown = f" ({', '.join(map(repr, held[:3]))}{' ...' if len(held) > 3 else ''})" if held else ""
        return text + (
            f"every {target} image shares a manifest group{shown} with images of another microscope, and "
            f"such groups go to train whole; give the {target} images groups of their own in the manifest's "
            "group column"
        )
    smallest = min(len(ids) for ids in eligible.values())
    text += f"the smallest group has {smallest} images"
    larger = _ratios_taking(smallest, subset, ratios, pool, lambda r: splits(r, near_duplicates))
    larger_advice = f"use larger ratios, e.g. ratios {_shown(larger)}, or " if larger else ""
    if larger is None and ratios[2]:  # few groups (a small lab dataset): dev may still take one without test
        no_test = _without_test(smallest, ratios, pool, lambda r: splits(r, near_duplicates))
        larger_advice = (
            f"use a test ratio of 0 (no test set), e.g. ratios {_shown(no_test)}, or " if no_test else ""
        )
    if near_duplicates and splits(tuple(ratios), False):
        return f"{text}, joined by the near-duplicate search (tiles of one field, repeated fields); {larger_advice or 'use '}--no-grouping"  # fmt: skip
    # Without the near-duplicate search only the manifest's groups hold images together: name them.
    by_manifest: dict[str, list[str]] = {}
    for image_id, key in merge_groups([i for ids in eligible.values() for i in ids], explicit).items():
        by_manifest.setdefault(key, []).append(image_id)
    named = sorted((len(ids), key) for key, ids in by_manifest.items() if any(explicit.get(i) for i in ids))
    if named:
        shown = ", ".join(f"{key!r} ({n} images)" for n, key in named[:3])
        text += f"; the manifest's group column holds them together: {shown}"
        text += f" and {len(named) - 3} more" if len(named) > 3 else ""
    return (
        f"{text}; {larger_advice}edit the manifest's group column (a group per slide or patient), or add "
        f"{target} images from other slides (--no-grouping keeps the manifest's groups)"
    )


def _shown(ratios) -> str:
    return " ".join(f"{r:g}" for r in ratios)


def _without_test(size: int, ratios, pool: int, splits) -> tuple[float, float, float] | None:
    """Ratios with no test set that split: the dev ratio kept if it does, else raised to take ``size``."""
    dropped = (round(ratios[0] + ratios[2], 10), ratios[1], 0.0)
    return dropped if splits(dropped) else _ratios_taking(size, "dev", dropped, pool, splits)


def _ratios_taking(size: int, subset: str, ratios, pool: int, splits) -> tuple[float, float, float] | None:
    """The least raised ratios (3 decimals) whose ``subset`` quota takes ``size`` images and that
    ``splits``: ``subset``'s ratio raised alone, else dev and test raised alike (a zero ratio stays
    zero), up to twice the share of ``size`` images; None if none does."""
    index = 1 if subset == "dev" else 2
    for both in (False, True):
        for step in range(math.ceil(size / pool * 1000), math.ceil(2 * size / pool * 1000) + 2):
            raised = [ratios[1], ratios[2]]
            raised[index - 1] = step / 1000
            if both:
                raised = [max(r, step / 1000) if r else 0.0 for r in raised]
            candidate = (round(1 - sum(raised), 10), *raised)
            try:
                check_ratios(candidate)
            except SplitError:
                break
            if quotas_of(candidate, pool)[subset] >= size and splits(candidate):
                return candidate
    return None
