"""Train/dev/test split by target microscope, keeping groups and near-duplicates whole.

Rules (see docs/dataset.md):

* ratios are of the whole pool; dev and test take their share from the target
  microscope only, so both are drawn from the target distribution;
* train holds target images too, more than dev and more than test;
* a group (manifest ``group``, joined with automatically found near-duplicates)
  is never split across subsets; a group holding any non-target image goes to
  train whole;
* each group gets a seeded hash ``u`` in [0, 1); target groups are dealt in
  increasing ``u`` to whichever of dev/test has more room left (a group that
  would overfill both goes to train): same seed, same split;
* with a ``previous`` split, existing ids keep their subset, new ids join their
  group's subset, and new groups go to train (``new_images="train"``) or, with
  ``"split"``, to dev if ``u`` < dev quota / target images, to test if below
  the sum of both shares, else train. Nothing trained on moves to dev/test.

A fresh split whose quotas leave train too few target images is refused with
advice checked against these same rules: the target images needed (the pool
grows with them) and ratios that would split the images as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from ..config import JsonConfig
from .dataset import DatasetError
from .grouping import GroupingConfig, NearDuplicatePair, iter_near_duplicates, merge_groups
from .split_quotas import check_quotas, check_ratios, no_group_fits, quotas_of, train_fits
from .split_report import format_table
from .splitfile import SUBSETS, SplitError, split_hash

__all__ = ["SplitConfig", "SplitError", "SplitProgress", "SplitResult", "iter_split", "split_dataset"]


@dataclass
class SplitConfig(JsonConfig):
    """How to split; ``ratios`` are (train, dev, test) shares of the whole pool."""

    target: str = "C"
    ratios: tuple[float, float, float] = (0.90, 0.05, 0.05)
    seed: int = 0
    grouping: bool = True
    new_images: str = "train"
    near_duplicates: GroupingConfig = field(default_factory=GroupingConfig)


@dataclass(frozen=True)
class SplitResult:
    """A split: ``subsets``, ``microscopes`` and ``groups`` map each id (dataset order)."""

    subsets: dict[str, str]
    microscopes: dict[str, str]
    groups: dict[str, str]
    target: str
    quotas: dict[str, int]
    pairs: tuple[NearDuplicatePair, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # a dev or test set that cannot score AP (:func:`_cell_warnings`)

    def counts(self) -> dict[str, dict[str, int]]:
        """``counts()[subset][microscope]`` image counts."""
        tags = sorted(set(self.microscopes.values()))
        counts = {s: dict.fromkeys(tags, 0) for s in SUBSETS}
        for image_id, subset in self.subsets.items():
            counts[subset][self.microscopes[image_id]] += 1
        return counts

    def crossing_pairs(self, pairs=None) -> list[NearDuplicatePair]:
        """The near-duplicate pairs (default: those found here) whose images are in different subsets."""
        pairs = self.pairs if pairs is None else pairs
        return [p for p in pairs if self.subsets.get(p.first) != self.subsets.get(p.second)]

    def hash(self) -> str:
        return split_hash(self.subsets)

    def table(self) -> str:
        """Counts per subset x microscope, as the CLI prints them."""
        return format_table(self.counts())


@dataclass(frozen=True)
class SplitProgress:
    """Report of :func:`iter_split`; the last one carries ``result``."""

    stage: str
    done: int
    total: int
    result: SplitResult | None = None


def group_hash(seed: int, key: str) -> float:
    """A group's position in [0, 1), from the seed and the group key only."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def iter_split(
    dataset, config: SplitConfig | None = None, previous: Mapping[str, str] | None = None
) -> Iterator[SplitProgress]:
    """Split a :class:`CellDataset`, yielding :class:`SplitProgress` reports.

    Parameters
    ----------
    dataset : CellDataset or path
        The pool, or its folder (opened with :meth:`CellDataset.open`).
    config : SplitConfig, optional
        Target microscope, ratios, seed, grouping.
    previous : mapping, optional
        ``{id: subset}`` of an earlier split (see :func:`read_split`): those ids
        keep their subset.

    Yields
    ------
    SplitProgress
        ``stage="grouping"`` per target image read for the near-duplicate
        search, then ``stage="done"`` with ``result``.

    Raises
    ------
    SplitError
        Bad ratios or target, too few target images for dev < train and
        test < train, groups too large to fill dev or test.
    DatasetError
        A folder given as ``dataset`` is not a valid dataset.
    TypeError
        ``dataset`` is neither a CellDataset nor a folder.
    """
    dataset = _as_dataset(dataset)
    config = config or SplitConfig()
    ratios = check_ratios(config.ratios)
    if config.new_images not in ("train", "split"):
        raise SplitError(f"new_images must be 'train' or 'split', got {config.new_images!r}")
    microscopes = {r.id: r.microscope for r in dataset}
    counts = Counter(microscopes.values())
    target = config.target
    if counts[target] == 0:
        found = ", ".join(f"{m}={n}" for m, n in sorted(counts.items()))
        raise SplitError(f"no images of target microscope {target!r} in the dataset ({found})")
    quotas = quotas_of(ratios, len(microscopes))
    if previous is None:  # with a previous split, only the final counts are checked
        check_quotas(target, counts[target], ratios, len(microscopes))

    target_ids = [i for i, m in microscopes.items() if m == target]
    pairs: tuple[NearDuplicatePair, ...] = ()
    if config.grouping:
        for report in iter_near_duplicates(dataset, target_ids, config.near_duplicates):
            if report.pairs is None:
                yield SplitProgress("grouping", report.done, report.total)
            else:
                pairs = report.pairs
    explicit = {r.id: r.group for r in dataset}
    groups = merge_groups(list(microscopes), explicit, pairs)
    members, eligible = _members(groups, microscopes, target)

    notes: list[str] = []
    if previous is None:
        subsets = _deal(members, eligible, quotas, config.seed)
    else:
        shares = {s: quotas[s] / counts[target] for s in ("dev", "test")}
        subsets = _extend(members, eligible, previous, shares, config, notes)
    subsets = {i: subsets[i] for i in microscopes}  # dataset order
    result = SplitResult(subsets, microscopes, groups, target, quotas, pairs)

    def explain(subset: str) -> str:  # no group fits in subset: what holds them together, what helps
        def splits(candidate, near_duplicates: bool) -> bool:
            return _fresh_split_works(microscopes, explicit, pairs if near_duplicates else (), target, candidate, config.seed)  # fmt: skip

        target_groups = {i: explicit[i] for i in target_ids}
        return no_group_fits(
            target, subset, quotas, eligible, target_groups, ratios, len(microscopes), config.grouping, splits
        )

    notes.extend(_check_result(result, eligible, previous is None, explain))
    warnings = _cell_warnings(dataset, result, previous is None)
    yield SplitProgress("done", 1, 1, dataclasses.replace(result, notes=tuple(notes), warnings=warnings))


def split_dataset(
    dataset,
    target: str = "C",
    ratios: tuple[float, float, float] = (0.90, 0.05, 0.05),
    seed: int = 0,
    grouping: bool = True,
    previous: Mapping[str, str] | None = None,
    new_images: str = "train",
) -> SplitResult:
    """Split a dataset into train, dev and test: :func:`iter_split` with the settings as arguments.

    Parameters
    ----------
    dataset : CellDataset or path
        The pool, or its folder (``images/``, ``masks/`` or ``targets/``, ``manifest.csv``).
    target : str
        The microscope tag whose images dev and test hold; other tags all go to train.
    ratios : tuple of float
        Train, dev and test shares of the whole dataset, summing to 1.
    seed : int
        Which groups go where (the same seed gives the same split).
    grouping : bool
        Keep near-duplicate images (tiles of one field) on one side.
    previous : mapping, optional
        ``{id: subset}`` of an earlier split (:func:`.splitfile.read_split`): those ids keep their subset.
    new_images : str
        With ``previous``: ``"train"`` puts new images in train, ``"split"`` splits their groups.

    Returns
    -------
    SplitResult
        ``subsets`` maps each id to ``"train"``, ``"dev"`` or ``"test"``; write it with
        :func:`.splitfile.write_split`.

    Raises
    ------
    SplitError, DatasetError, TypeError
        See :func:`iter_split`.
    """
    config = SplitConfig(target, tuple(ratios), seed, grouping, new_images)
    for report in iter_split(dataset, config, previous):
        if report.result is not None:
            return report.result
    raise AssertionError("iter_split ended without a result")  # pragma: no cover


def _as_dataset(dataset):
    """``dataset``, or the dataset in the folder it names."""
    import os

    from .dataset import CellDataset

    if isinstance(dataset, (str, os.PathLike)):
        return CellDataset.open(dataset)
    if not isinstance(dataset, CellDataset):
        raise TypeError(
            f"dataset must be a CellDataset or a dataset folder, got {type(dataset).__name__} {dataset!r:.80}"
        )
    return dataset


def _members(groups: Mapping[str, str], microscopes: Mapping[str, str], target: str):
    """``(members, eligible)``: the ids of each group key, and the groups of target images only."""
    members: dict[str, list[str]] = {}
    for image_id, key in groups.items():
        members.setdefault(key, []).append(image_id)
    eligible = {k: v for k, v in members.items() if all(microscopes[i] == target for i in v)}
    return members, eligible


def _fresh_split_works(microscopes, explicit, pairs, target: str, ratios, seed: int) -> bool:
    """Whether a fresh split with these ratios and groups passes every check (advice is tried first)."""
    quotas = quotas_of(ratios, len(microscopes))
    if not train_fits(sum(m == target for m in microscopes.values()), quotas):
        return False
    groups = merge_groups(list(microscopes), explicit, pairs)
    members, eligible = _members(groups, microscopes, target)
    result = SplitResult(_deal(members, eligible, quotas, seed), dict(microscopes), groups, target, quotas)
    try:
        _check_result(result, eligible, True)
    except SplitError:
        return False
    return True


def _deal(members, eligible, quotas, seed) -> dict[str, str]:
    """Fresh split: target groups in hash order go to the emptier of dev/test while they fit."""
    subsets = {i: "train" for ids in members.values() for i in ids}
    room = dict(quotas)
    for key in sorted(eligible, key=lambda k: (group_hash(seed, k), k)):
        size = len(eligible[key])
        fits = [s for s in ("dev", "test") if size <= room[s]]
        if fits:
            chosen = max(fits, key=lambda s: room[s])
            room[chosen] -= size
            subsets.update(dict.fromkeys(eligible[key], chosen))
    return subsets


def _extend(members, eligible, previous, shares, config, notes) -> dict[str, str]:
    """Keep the previous subsets; place new ids by their group, else by rule."""
    subsets: dict[str, str] = {}
    for key, ids in members.items():
        old = [previous[i] for i in ids if i in previous]
        if len(set(old)) > 1:
            notes.append(f"group {key!r} spans {sorted(set(old))} in the previous split (kept as it was)")
        if old:
            # New members follow the group; a mixed group's newcomers follow its majority.
            placement = Counter(old).most_common(1)[0][0]
        elif config.new_images == "split" and key in eligible:
            u = group_hash(config.seed, key)
            placement = (
                "dev" if u < shares["dev"] else "test" if u < shares["dev"] + shares["test"] else "train"
            )
        else:
            placement = "train"
        subsets.update({i: previous.get(i, placement) for i in ids})
    dropped = len(set(previous) - set(subsets))
    if dropped:
        notes.append(f"{dropped} id(s) of the previous split are no longer in the dataset (dropped)")
    return subsets


def _check_result(
    result: SplitResult, eligible, fresh: bool, explain: Callable[[str], str] | None = None
) -> list[str]:
    """Refuse splits that break the rules; return notes on quotas not met exactly.

    ``explain(subset)`` words the refusal of a subset that no group fits (default: the bare facts).
    """
    wrong = [i for i, s in result.subsets.items() if s != "train" and result.microscopes[i] != result.target]
    if wrong:
        raise SplitError(
            f"{len(wrong)} image(s) in dev/test are not of target microscope {result.target!r} "
            f"(e.g. {wrong[:3]}); fix the manifest or drop them from the previous split"
        )
    counts = {s: result.counts()[s].get(result.target, 0) for s in SUBSETS}
    notes = []
    for subset in ("dev", "test"):
        quota = result.quotas[subset]
        if fresh and quota and counts[subset] == 0:
            if explain is not None:
                raise SplitError(explain(subset))
            smallest = min((len(v) for v in eligible.values()), default=0)
            raise SplitError(
                f"no group of {result.target} images fits in {subset} ({quota} images): the smallest "
                f"group has {smallest} images"
            )
        if fresh and counts[subset] != quota:
            notes.append(
                f"{subset} holds {counts[subset]} images for a quota of {quota} (groups are kept whole)"
            )
    if counts["train"] <= max(counts["dev"], counts["test"]):
        raise SplitError(
            f"train would hold {counts['train']} {result.target} images, dev {counts['dev']}, "
            f"test {counts['test']}: train must hold more than each"
        )
    return notes


def _cell_warnings(dataset, result: SplitResult, fresh: bool) -> tuple[str, ...]:
    """Dev or test sets whose images all hold no labelled cell: AP cannot be scored on them.

    Reads labels until one holds a cell, so a usual split reads one file per set. A label
    file that does not decode counts as holding cells: ``napari-cellseg check`` reports it.
    """
    found = []
    for subset in ("dev", "test"):
        ids = [i for i, s in result.subsets.items() if s == subset]
        if not ids or any(_has_cells(dataset, i) for i in ids):
            continue
        listed = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        advice = (
            "split again with another seed, or label the cells of these images"
            if fresh
            else "they kept their subset from the previous split: make a fresh split if no model was "
            f"trained on it, or add {result.target} images with cells (`split --new-images split` puts "
            "new images in dev and test too)"
        )
        found.append(
            f"{subset} holds {len(ids)} {result.target} image(s) and none has a labelled cell ({listed}): "
            f"AP cannot be scored on {subset} (with no cell to find, a model scores 1 if it finds none, else 0); "
            f"{advice}"
        )
    return tuple(found)


def _has_cells(dataset, image_id: str) -> bool:
    try:
        return bool(dataset.load_reference_instances(image_id).any())
    except DatasetError:
        return True
