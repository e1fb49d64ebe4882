"""fgvc synth, download, check-data, prepare, split and audit: the datasets, their flags and what each runs."""

from __future__ import annotations

import argparse

from fgvc.core.config import DATASETS
from fgvc.core.defaults import (
    AUDIT_FOLDS,
    AUDIT_MAX_ASPECT,
    AUDIT_MIN_SIDE,
    AUDIT_SIMILARITY,
    DIFFICULTIES,
    NEAR_BITS,
    SPLIT_FILE,
    TEST_SHARE,
    VAL_SHARE,
)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is invalid: expected WIDTHxHEIGHT, e.g. 160x140") from None
    return width, height


def add_data(sub: argparse._SubParsersAction) -> None:
    """fgvc synth, download, check-data and prepare: the datasets."""
    p = sub.add_parser("synth", help="write a synthetic dataset in the FGVC-Aircraft layout")
    p.add_argument("--out", required=True, help="folder to write fgvc-aircraft-2013b/ into")
    p.add_argument("--classes", type=int, default=12, help="number of variants (default 12)")
    p.add_argument("--per-class", type=int, default=30, help="images per variant (default 30)")
    p.add_argument("--size", type=_size, default=(160, 140), help="image size WxH including the 20-px banner")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="easy", help="easy: each variant its own engines, "
                   "tail and length; hard: the variants of a family differ only by their tail, which a cloud hides in "
                   "some images (default easy)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("download", help="download FGVC-Aircraft 2013b (2.6 GB)")
    p.add_argument("--data-root", default="data", help="folder to unpack into (default data)")
    p.set_defaults(func=_download)

    p = sub.add_parser("check-data", help="decode every image of a dataset and list the bad files",
                       description="Check annotation files and decode every image; exit status 1 if any is bad.")
    p.add_argument("--data-root", default="data", help="folder holding fgvc-aircraft-2013b/ (or an imagefolder's "
                   "class folders and splits.csv, or its split folders; default data)")
    p.add_argument("--dataset", default="fgvc-aircraft", choices=DATASETS)
    p.set_defaults(func=_check_data)

    p = sub.add_parser("prepare", help="store FGVC-Aircraft banner-cropped and shrunk for faster training",
                       description="Write a copy of FGVC-Aircraft for training at --img-size and below: every "
                       "image banner-cropped, its short side shrunk to 1.15 x the size. Train on it with "
                       "--data-root OUT; the original stays as it is.")
    p.add_argument("--data-root", default="data", help="folder holding the original fgvc-aircraft-2013b/")
    p.add_argument("--out", required=True, help="folder for the prepared copy")
    p.add_argument("--img-size", type=int, default=448, help="the largest training size it serves (default 448)")
    p.add_argument("--banner-px", type=int, default=20, help="rows of banner to cut (default 20)")
    p.set_defaults(func=_prepare)


def add_audit(sub: argparse._SubParsersAction, shared: dict[str, argparse.ArgumentParser]) -> None:
    """fgvc audit: what is wrong with a data set."""
    p = sub.add_parser("audit", help="find copies across splits and under two labels, doubtful labels, bad files",
                       description="Audit a data set: exact and near copies across splits (leaks) and under two "
                       "labels in one split (conflicts), labels a classifier on pretrained features doubts, files "
                       "that do not decode, tiny or stretched photos, the classes of each split. Writes OUT/audit.md, "
                       "audit.html (a contact sheet), audit.json and exclude.txt (suggested, for --exclude); no photo "
                       "is moved or deleted.", parents=[shared["device"]])
    p.add_argument("--data-root", default="data", help="folder holding fgvc-aircraft-2013b/ (or the imagefolder's "
                   "splits; default data)")
    p.add_argument("--dataset", default="fgvc-aircraft", choices=DATASETS)
    p.add_argument("--out", required=True, help="folder for the report (and the cached embeddings)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="the splits to audit (default: all; FGVC-Aircraft: "
                   "train val test)")
    p.add_argument("--near-bits", type=int, default=NEAR_BITS, help=f"near copies: 64-bit dHashes that differ in "
                   f"at most this many bits (default {NEAR_BITS}, as fgvc split's)")
    p.add_argument("--min-similarity", type=float, default=AUDIT_SIMILARITY, help=f"near copies: the cosine "
                   f"similarity of two photos' pretrained features is at least this (default {AUDIT_SIMILARITY:g}; "
                   f"finds crops, recolours and mirror images too)")
    p.add_argument("--min-side", type=int, default=AUDIT_MIN_SIDE, help=f"flag photos whose short side is under "
                   f"this many pixels (default {AUDIT_MIN_SIDE})")
    p.add_argument("--max-aspect", type=float, default=AUDIT_MAX_ASPECT, help=f"flag photos whose long side is more "
                   f"than this times the short one (default {AUDIT_MAX_ASPECT:g})")
    p.add_argument("--folds", type=int, default=AUDIT_FOLDS, help=f"folds of the out-of-fold probabilities behind "
                   f"the doubtful labels (default {AUDIT_FOLDS})")
    p.add_argument("--top", type=int, default=50, help="doubtful labels shown in audit.md and audit.html "
                   "(default 50; all are in audit.json)")
    p.add_argument("--batch-size", type=int, default=32, help="photos per forward pass of the backbone (default 32)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding photos (default 0)")
    p.set_defaults(func=_audit)


def add_split(sub: argparse._SubParsersAction) -> None:
    """fgvc split: a flat folder of photos into train, val and test, copies kept together."""
    p = sub.add_parser("split", help="split a flat folder ROOT/<class>/<image> into train, val and test (a file)",
                       description=f"Write ROOT/{SPLIT_FILE} (path,class,split for each photo), seeded and "
                       "stratified by class, for `fgvc train --dataset imagefolder --data-root ROOT`. Exact and near "
                       "duplicates land in the same split. Nothing is copied or moved, and an existing split file is "
                       "never rewritten silently: --update gives only new photos a split, --force draws afresh.")
    p.add_argument("root", metavar="ROOT", help="folder of class folders of photos")
    p.add_argument("--val", type=float, help=f"share of each class for val (default {VAL_SHARE}; with --update, the "
                   f"file's own)")
    p.add_argument("--test", type=float, help=f"share of each class for test (default {TEST_SHARE}; with --update, "
                   f"the file's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0): the same seed, photos and "
                   "flags give the same file")
    p.add_argument("--near-bits", type=int, default=NEAR_BITS, help=f"near duplicates: photos whose 64-bit dHashes "
                   f"differ in at most this many bits (default {NEAR_BITS}: resized and recompressed copies, and some "
                   f"look-alikes; 0: exact copies and identical hashes only)")
    p.add_argument("--exclude", metavar="FILE", help="exclusion list (fgvc audit's exclude.txt): its photos are "
                   "listed as excluded, in no split")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true", help="keep every listed photo's split; give new photos one "
                      "(a near copy of a listed photo joins its split); drop the lines of photos that are gone")
    mode.add_argument("--force", action="store_true", help="draw every split afresh over an existing file (runs "
                      "trained on the old split are no longer comparable)")
    p.add_argument("--threads", type=int, default=4, help="photos hashed at a time (default 4)")
    p.set_defaults(func=_split)


def _synth(args: argparse.Namespace) -> int:
    from fgvc.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(args.out, args.classes, args.per_class, args.size, args.seed,
                                     difficulty=args.difficulty)
    print(f"synthetic dataset written to {folder}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from fgvc.data.prepare import download_fgvc

    print(f"FGVC-Aircraft is in {download_fgvc(args.data_root)}")
    return 0


def _split(args: argparse.Namespace) -> int:
    from fgvc.data.split import split_folder

    report = split_folder(args.root, args.val, args.test, args.seed, args.near_bits, args.exclude, args.update,
                          args.force, args.threads)
    counts = ", ".join(f"{split} {count}" for split, count in sorted(report.counts.items()))
    print(f"{report.path}: {counts}; {report.groups} duplicate group(s) of {report.grouped} photos, each in one split")
    if args.update:
        print(f"{report.added} new photo(s) given a split; {len(report.dropped)} line(s) of photos gone dropped"
              + "".join(f"\n  dropped {photo}" for photo in report.dropped))
    if report.spanning:
        print(f"warning: {report.spanning} duplicate group(s) span two splits, as listed before this update: "
              f"`fgvc audit` shows them; --force draws every split afresh")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    from fgvc.data.checks import check_data

    checked, problems = check_data(args.data_root, args.dataset)
    for problem in problems:
        print(problem)
    print(f"{checked} images checked under {args.data_root}: {len(problems)} problem(s)")
    return 1 if problems else 0


def _audit(args: argparse.Namespace) -> int:
    from fgvc.apps.audit import run_audit
    from fgvc.apps.audit_report import write_audit

    audit = run_audit(args.data_root, args.dataset, args.out, args.splits, args.near_bits, args.min_similarity,
                      args.min_side, args.max_aspect, args.folds, args.device, args.batch_size, args.workers)
    paths = write_audit(audit, args.out, args.top)
    print(paths[0].read_text(), end="")
    print(f"\nwritten to {', '.join(str(path) for path in paths)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from fgvc.data.prepare import prepare_fgvc

    print(f"prepared copy written to {prepare_fgvc(args.data_root, args.out, args.img_size, args.banner_px)}")
    return 0
