"""``napari-cellseg check`` and ``split``: check a dataset folder, write its train/dev/test split.

Nothing heavy is imported here; the work modules load when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ..classes import MICROSCOPES

DESCRIPTION = """\
Split a dataset folder into train/dev/test and write one row per image
(id, microscope, subset, group). Ratios are of the whole pool; dev and test
take their share from the target microscope only, and train keeps more target
images than each of them. Groups (the manifest's `group` column, joined with
automatically found near-duplicates: tiles of one field, repeated fields) are
never split. With --previous, images already split keep their subset and new
ones go to train (or, with --new-images split, are placed by their group's
seeded hash), so nothing trained on ever moves to dev/test. An existing --out
is refused unless --overwrite. A dev or test set whose images hold no labelled
cell is written with a warning: AP cannot be scored on it.
"""


CHECK_DESCRIPTION = """\
Check a dataset folder before splitting or training it: the manifest, every
file's header, then every image and label file decoded as training reads it
(binary masks, float or negative labels, target maps with values other than
0/1/2, files that do not decode). Prints the images and cells per microscope,
or every problem by file (exit status 2).
"""


def register(subparsers) -> None:
    check = subparsers.add_parser(
        "check",
        help="check a dataset folder: manifest, headers and pixels; count images and cells",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--data", required=True, type=Path, help="dataset folder (images/, masks/, manifest.csv)"
    )
    check.add_argument(
        "--headers-only", action="store_true", help="check the manifest and headers, read no pixel (fast)"
    )
    check.add_argument(
        "--microscopes", nargs="+", metavar="TAG",
        help=f"the only microscope tags the manifest may use, e.g. {' '.join(MICROSCOPES)} "
        "(default: any valid tag it uses)",
    )  # fmt: skip
    check.set_defaults(func=run_check)

    parser = subparsers.add_parser(
        "split",
        help="split a dataset into train/dev/test by target microscope",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="dataset folder (images/, masks/, manifest.csv)"
    )
    parser.add_argument("--target", required=True, help="target microscope: dev and test come from it only")
    parser.add_argument(
        "--ratios", nargs=3, type=float, default=[0.90, 0.05, 0.05], metavar=("TRAIN", "DEV", "TEST"),
        help="shares of the whole pool, summing to 1 (default: 0.90 0.05 0.05)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the group hash (default: 0)")
    parser.add_argument(
        "--out", required=True, type=Path, help="split CSV to write (a new file unless --overwrite)"
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing --out (images trained on may move to dev/test: prefer --previous)",
    )  # fmt: skip
    parser.add_argument("--no-grouping", action="store_true", help="do not group near-duplicate images")
    parser.add_argument("--previous", type=Path, help="earlier split CSV: its images keep their subset")
    parser.add_argument(
        "--new-images", choices=("train", "split"), default="train",
        help="with --previous (only): new images go to train (default) or are placed by their group hash",
    )  # fmt: skip
    parser.add_argument(
        "--microscopes", nargs="+", metavar="TAG",
        help=f"the only microscope tags the manifest may use, e.g. {' '.join(MICROSCOPES)} "
        "(default: any valid tag it uses)",
    )  # fmt: skip
    parser.set_defaults(func=run_split)


def run_check(args: argparse.Namespace) -> int:
    from ..app.dataset_tools import iter_check_dataset
    from ..cli import CommandError
    from ..generators import run_to_end
    from .dataset import DatasetError

    def report(progress) -> None:
        if progress.done % 500 == 0 or progress.done == progress.total:
            print(f"read {progress.done} of {progress.total} images", file=sys.stderr, flush=True)

    found = run_to_end(iter_check_dataset(args.data, args.microscopes, pixels=not args.headers_only), report)
    if not found.ok:
        raise CommandError(str(DatasetError(args.data, found.problems)))
    counts, cells = found.counts(), found.cells()
    print(f"{'microscope':<12}{'images':>8}" + (f"{'cells':>9}" if cells else ""))
    for tag, n in counts.items():
        print(f"{tag:<12}{n:>8}" + (f"{cells.get(tag, 0):>9}" if cells else ""))
    print(f"{'total':<12}{sum(counts.values()):>8}" + (f"{sum(cells.values()):>9}" if cells else ""))
    tag_note = found.tag_note()
    if tag_note:
        print(f"note: {tag_note}")
    if found.pixels is not None and found.pixels.empty:
        print(f"note: {len(found.pixels.empty)} image(s) hold no cell: {', '.join(found.pixels.empty[:5])}")
    checked = "headers only" if args.headers_only else "manifest, headers and pixels"
    print(f"{args.data}: no problem found ({checked})")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_file
    from .dataset import CellDataset, DatasetError
    from .split import SplitConfig, iter_split
    from .splitfile import SplitError, read_split, write_split

    if args.microscopes is not None and args.target not in args.microscopes:
        raise CommandError(
            f"unknown target microscope {args.target!r} (allowed: {' '.join(args.microscopes)})"
        )
    if args.new_images == "split" and args.previous is None:  # it would be silently ignored
        raise CommandError(
            "--new-images split places the images that a --previous split lacks; without --previous "
            "every image is split afresh: add --previous OLD.csv (the split a model was trained on), "
            "or leave out --new-images"
        )
    # Checked before the (slow) near-duplicate search, not after it.
    read = [(args.data / "manifest.csv", "the dataset's manifest"), (args.previous, "the --previous split")]
    check_out_file(args.out, "--out", read, hint="give a .csv file")
    if args.out.exists() and not args.overwrite:  # a model may have trained on it
        raise CommandError(
            f"{args.out} exists; to add new images and keep its assignments, write a new file with "
            f"--previous {args.out} --out NEW.csv (--overwrite replaces it: trained images may move to dev/test)"
        )
    try:
        dataset = CellDataset.open(args.data, microscopes=args.microscopes)
        previous = read_split(args.previous) if args.previous else None
        config = SplitConfig(
            args.target, tuple(args.ratios), args.seed, not args.no_grouping, args.new_images
        )
        result = None
        for report in iter_split(dataset, config, previous):
            if report.stage == "grouping" and report.done == report.total:
                print(f"near-duplicate search: read {report.total} {args.target} images", file=sys.stderr)
            result = report.result or result
    except (DatasetError, SplitError) as err:
        raise CommandError(str(err)) from None
    try:
        path = write_split(args.out, result.subsets, result.microscopes, result.groups)
    except OSError as err:
        raise CommandError(f"{args.out}: cannot write ({err})") from None
    print(result.table())
    print(_summary(result, config.grouping))
    for note in result.notes:
        print(f"note: {note}")
    for warning in result.warnings:  # written all the same: the user decides
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path} (split hash {result.hash()[:16]})")
    return 0


def _summary(result, grouping: bool) -> str:
    sizes = Counter(result.groups[i] for i, m in result.microscopes.items() if m == result.target)
    largest = max(sizes.values(), default=0)
    text = f"{result.target} images in {len(sizes)} groups (largest {largest})"
    if grouping:
        crossing = len(result.crossing_pairs())
        text += f"; {len(result.pairs)} near-duplicate pairs, {crossing} across subsets"
    else:
        text += "; near-duplicate grouping off"
    return text
