"""``napari-cellseg import-outlines``: images and their QuPath or Fiji outlines into a dataset folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..classes import MICROSCOPES, check_microscope_tag

DESCRIPTION = """\
Add images and the cell outlines drawn on them in QuPath (File > Export objects
as GeoJSON: <image name>.geojson) or in Fiji (ROI Manager > More > Save:
<image name>_rois.zip, .zip or .roi) to a dataset folder, as instance masks
ready for split and train. Each polygon becomes one cell (a pixel belongs to it
when its centre lies inside); points and lines are skipped. Images without
outlines are listed and left out. Exit status 1 if any image failed.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-outlines",
        help="add images and their QuPath or Fiji outlines to a dataset folder as masks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="PATH", help="images or folders of images")
    parser.add_argument(
        "--outlines",
        type=Path,
        metavar="DIR",
        help="folder of the outline files (default: beside each image)",
    )
    parser.add_argument(  # --dataset: its first spelling; --data as every other command
        "--data", "--dataset", dest="dataset", required=True, type=Path, metavar="DIR",
        help="dataset folder (created if new)",
    )  # fmt: skip
    parser.add_argument(
        "--microscope",
        required=True,
        metavar="TAG",
        help=f"microscope tag of these images: {', '.join(MICROSCOPES)} or a lab's own (D, zeiss2, ...)",
    )
    parser.add_argument(
        "--group", metavar="KEY", help="slide or patient key: these images stay on one side of the split"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace images already in the dataset")
    parser.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from ..cli import CommandError, check_out_folder
    from .outlines_import import iter_import_outlines

    check_out_folder(args.dataset, "--data")

    bad_tag = check_microscope_tag(args.microscope)
    if bad_tag:
        raise CommandError(f"--microscope: {bad_tag}")
    if args.outlines is not None and not args.outlines.is_dir():
        raise CommandError(f"--outlines {args.outlines}: no such folder")
    counts = {"added": 0, "no outlines": 0, "failed": 0}
    cells = 0
    try:
        for report in iter_import_outlines(
            args.images,
            args.outlines,
            args.dataset,
            args.microscope,
            group=args.group,
            overwrite=args.overwrite,
        ):
            counts["failed" if report.status == "exists" else report.status] += 1  # refused: a failure
            cells += report.cells
            if report.status == "added":
                note = f" ({report.message})" if report.message else ""
                print(f"{report.image_id}: {report.cells} cells{note}")
            elif report.status == "exists":  # --overwrite only where it replaces this very image
                advice = " (replace it with --overwrite)" if report.same_image else ""
                print(f"{report.image_id}: failed: {report.message}{advice}", file=sys.stderr)
            else:
                print(f"{report.image_id}: {report.status}: {report.message}", file=sys.stderr)
    except ValueError as err:
        raise CommandError(str(err)) from None
    print(
        f"{counts['added']} image(s) added to {args.dataset} with {cells} cells; "
        f"{counts['no outlines']} without outlines, {counts['failed']} failed"
    )
    return 1 if counts["failed"] or not counts["added"] else 0  # nothing imported is not a success
