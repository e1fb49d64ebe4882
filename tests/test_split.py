"""Your own photos in one flat folder: fgvc split (seeded, stratified, copies kept together, never rewritten
silently), the imagefolder read through its split file, exclusion lists, and the data fingerprint of both."""

from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from readme_checks import documented_commands
from torchvision import datasets

from fgvc.apps.cli import main
from fgvc.core.config import make_config
from fgvc.core.errors import ConfigError, DatasetError, FolderError
from fgvc.data.checks import check_data
from fgvc.data.datasets import build_imagefolder
from fgvc.data.kinds import build_split, dataset_hierarchy
from fgvc.data.split import EXCLUDED, file_sha256, read_exclusions, read_split_file, split_folder
from fgvc.runs import provenance

FLAT_TRAIN = "fgvc train --preset cpu --dataset imagefolder --data-root ROOT --train-split train --eval-split val"
CLASSES = ("Spitfire Mk IX", "Bf 109E", "a6m Zero")  # sorted: "Bf 109E", "Spitfire Mk IX", "a6m Zero"


def photo(path: Path, seed: int, size: int = 64) -> Path:
    """A photo of its own: a random 9 x 8 colour field drawn from ``seed``, smoothly enlarged (its dHash is random,
    so two such photos differ in about 32 of 64 bits)."""
    field = np.random.default_rng(seed).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(field).resize((size, size), Image.BICUBIC).save(path, quality=90)
    return path


def flat_folder(root: Path, per_class: dict[str, int]) -> Path:
    """``root/<class>/<n>.jpg``: ``per_class[class]`` photos of each class, all different."""
    for c, (name, count) in enumerate(per_class.items()):
        for i in range(count):
            photo(root / name / f"{i:03d}.jpg", 1000 * c + i)
    return root


def splits_of(root: Path) -> dict[str, str]:
    """``{path: split}`` of ``root/splits.csv``."""
    return {path: row.split for path, row in read_split_file(root / "splits.csv").items()}


def test_the_same_seed_gives_the_same_file_stratified_by_class(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {"Spitfire Mk IX": 40, "Bf 109E": 20, "a6m Zero": 7})
    report = split_folder(root, seed=3)
    first = (root / "splits.csv").read_bytes()
    assert first.decode().splitlines()[0] == "path,class,split"
    split_folder(root, seed=3, force=True)
    assert (root / "splits.csv").read_bytes() == first
    split_folder(root, seed=4, force=True)
    assert (root / "splits.csv").read_bytes() != first
    split_folder(root, seed=3, force=True)
    splits = splits_of(root)
    assert report.counts == dict(Counter(splits.values())) and report.groups == 0
    for name, count in (("Spitfire Mk IX", 40), ("Bf 109E", 20), ("a6m Zero", 7)):
        per_split = Counter(split for path, split in splits.items() if path.startswith(f"{name}/"))
        for split, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
            assert abs(per_split[split] - share * count) <= 1, (name, per_split)
    split_folder(root, val=0.2, test=0, force=True)
    assert set(splits_of(root).values()) == {"train", "val"}
    with pytest.raises(ConfigError, match=r"--val 0.5 \+ --test 0.5"):
        split_folder(root, val=0.5, test=0.5, force=True)


def test_exact_and_near_copies_land_in_their_originals_split(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {name: 12 for name in CLASSES})
    shutil.copyfile(root / "Bf 109E" / "003.jpg", root / "Bf 109E" / "003 copy.jpg")  # byte for byte
    with Image.open(root / "a6m Zero" / "005.jpg") as original:  # resized and recompressed
        original.resize((48, 48)).save(root / "a6m Zero" / "005 small.jpg", quality=60)
    shutil.copyfile(root / "Bf 109E" / "007.jpg", root / "Spitfire Mk IX" / "007 filed twice.jpg")  # two labels
    for seed in range(4):
        report = split_folder(root, seed=seed, force=True)
        splits = splits_of(root)
        assert splits["Bf 109E/003.jpg"] == splits["Bf 109E/003 copy.jpg"]
        assert splits["a6m Zero/005.jpg"] == splits["a6m Zero/005 small.jpg"]
        assert splits["Bf 109E/007.jpg"] == splits["Spitfire Mk IX/007 filed twice.jpg"]
        assert (report.groups, report.grouped) == (3, 6)
    seen = set()
    for seed in range(12):  # the groups do not always land in train
        split_folder(root, seed=seed, force=True)
        seen.add(splits_of(root)["a6m Zero/005.jpg"])
    assert len(seen) > 1


def test_an_existing_file_is_refused_and_update_keeps_every_listed_split(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {name: 10 for name in CLASSES})
    split_folder(root)
    before = splits_of(root)
    with pytest.raises(FolderError, match="--update"):
        split_folder(root)
    (root / "Bf 109E" / "000.jpg").unlink()
    photo(root / "Bf 109E" / "new.jpg", 99)
    shutil.copyfile(root / "a6m Zero" / "004.jpg", root / "a6m Zero" / "004 again.jpg")
    report = split_folder(root, update=True, seed=5)
    after = splits_of(root)
    assert {path: split for path, split in after.items() if path in before} == \
        {path: split for path, split in before.items() if path != "Bf 109E/000.jpg"}
    assert after["a6m Zero/004 again.jpg"] == before["a6m Zero/004.jpg"]
    assert "Bf 109E/new.jpg" in after and "Bf 109E/000.jpg" not in after
    assert (report.added, report.dropped) == (2, ["Bf 109E/000.jpg"])


def test_a_missing_and_an_unlisted_photo_are_named(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {name: 6 for name in CLASSES})
    split_folder(root)
    (root / "a6m Zero" / "002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"splits\.csv line \d+ lists a6m Zero/002\.jpg.*fgvc split .* --update"):
        build_imagefolder(root, "train")
    split_folder(root, update=True)
    photo(root / "Bf 109E" / "late.jpg", 77)
    with pytest.raises(DatasetError, match=r"Bf 109E/late\.jpg is not in the split file.*--update"):
        build_imagefolder(root, "val")
    with pytest.raises(DatasetError, match="late"):
        check_data(root, "imagefolder")
    split_folder(root, update=True)
    assert check_data(root, "imagefolder") == (18, [])


def test_the_split_file_is_read_as_split_folders_are(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {name: 8 for name in CLASSES})
    split_folder(root)
    folders = tmp_path / "folders"  # the same split as split folders
    for path, split in splits_of(root).items():
        (folders / split / Path(path).parent).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / path, folders / split / path)
    for split in ("train", "val", "test"):
        listed, foldered = build_imagefolder(root, split), build_imagefolder(folders, split)
        assert isinstance(listed, datasets.ImageFolder)
        assert listed.classes == foldered.classes == ["Bf 109E", "Spitfire Mk IX", "a6m Zero"]
        assert [(Path(p).relative_to(root), y) for p, y in listed.samples] == \
            [(Path(p).relative_to(folders / split), y) for p, y in foldered.samples]
    with pytest.raises(DatasetError, match=r"split 'trainval' is not in .*train, val"):
        build_imagefolder(root, "trainval")
    (root / "hierarchy.csv").write_text("class,manufacturer\nBf 109E,Messerschmitt\nSpitfire Mk IX,Supermarine\n")
    cfg = make_config("demo", dataset="imagefolder", data_root=str(root))
    with pytest.raises(DatasetError, match="no line for class 'a6m Zero'"):
        dataset_hierarchy(cfg, "val")
    with (root / "hierarchy.csv").open("a") as f:
        f.write("a6m Zero,Mitsubishi\n")
    assert dataset_hierarchy(cfg, "val")["manufacturer"][1] == ["Messerschmitt", "Mitsubishi", "Supermarine"]
    assert check_data(root, "imagefolder") == (24, [])


def test_an_exclusion_list_leaves_photos_out_and_names_a_bad_line(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    root = flat_folder(tmp_path / "photos", {name: 8 for name in CLASSES})
    (root / "Bf 109E" / "broken.jpg").write_bytes(b"not a photo")
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# from fgvc audit\n\nBf 109E/broken.jpg  # does not decode\n  a6m Zero/001.jpg  \n")
    assert read_exclusions(exclude, root) == ["Bf 109E/broken.jpg", "a6m Zero/001.jpg"]
    with pytest.raises(Exception, match=r"broken\.jpg.*exclusion file"):
        split_folder(root)
    split_folder(root, exclude=exclude)
    splits = splits_of(root)
    assert splits["Bf 109E/broken.jpg"] == splits["a6m Zero/001.jpg"] == EXCLUDED
    assert "a6m Zero/001.jpg" not in {Path(p).relative_to(root).as_posix()
                                      for split in ("train", "val", "test")
                                      for p, _ in build_imagefolder(root, split).samples}
    cfg = make_config("demo", dataset="imagefolder", data_root=str(root), train_split="train", exclude=str(exclude))
    with caplog.at_level(logging.INFO, logger="fgvc"):
        build_split(cfg, "train", None)
    assert "leaves out 0 of the" in caplog.text  # they are already out of every split
    bad = tmp_path / "bad.txt"
    bad.write_text("Bf 109E/000.jpg\n# fine\nBf 109E/nowhere.jpg\n")
    with pytest.raises(DatasetError, match=r"bad\.txt line 3: 'Bf 109E/nowhere\.jpg' names no photo"):
        read_exclusions(bad, root)
    bad.write_text("../photos/Bf 109E/000.jpg\n")
    with pytest.raises(DatasetError, match="line 1"):
        read_exclusions(bad, root)


def test_the_fingerprint_follows_the_split_file_and_the_exclusion_list(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "photos", {name: 8 for name in CLASSES})
    split_folder(root)

    def fingerprint(exclude: Path | None = None) -> dict:
        cfg = make_config("demo", dataset="imagefolder", data_root=str(root), exclude=exclude and str(exclude))
        dataset = build_split(cfg, "train", None)
        return provenance.split_fingerprint(dataset, dataset.classes, root, "train")

    plain = fingerprint()
    assert set(plain) == {"split", "images", "classes", "sha256", "split_file_sha256"}
    assert fingerprint() == plain
    split_folder(root, seed=1, force=True)
    redrawn = fingerprint()
    assert redrawn["sha256"] != plain["sha256"] and redrawn["split_file_sha256"] != plain["split_file_sha256"]
    rows = list(csv.reader((root / "splits.csv").open()))
    row = next(i for i, r in enumerate(rows) if r[2] == "test")
    rows[row][2] = "val"  # a test photo moved to val: train's photos stay, the file changes
    with (root / "splits.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    moved = fingerprint()
    assert moved["sha256"] == redrawn["sha256"] and moved["split_file_sha256"] != redrawn["split_file_sha256"]
    exclude = tmp_path / "exclude.txt"
    train_photo = next(path for path, split in splits_of(root).items() if split == "train")
    exclude.write_text(f"{train_photo}\n")
    excluded = fingerprint(exclude)
    assert excluded["images"] == moved["images"] - 1 and "exclude_sha256" in excluded


def test_the_docs_flat_folder_commands_split_and_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The documented "Your own data" commands, run as written on a flat folder (the training line shrunk to a
    tiny run by flags added after it)."""
    split, train = "fgvc split ROOT", FLAT_TRAIN
    assert {split, train} <= set(documented_commands())
    root = flat_folder(tmp_path / "photos", {"Spitfire Mk IX": 12, "Bf 109E": 12})
    assert main(split.replace("ROOT", str(root)).split()[1:]) == 0
    assert "test 4, train 16, val 4; 0 duplicate group(s)" in capsys.readouterr().out
    assert main(["split", str(root)]) == 2
    assert "never rewritten silently" in capsys.readouterr().err
    tiny = ["--epochs", "1", "--img-size", "32", "--batch-size", "4", "--workers", "0", "--precision", "fp32",
            "--time-budget", "0", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    assert main([*train.replace("ROOT", str(root)).split()[1:], *tiny]) == 0
    data = provenance.read_record(tmp_path / "run")["sessions"][0]["data"]
    assert (data["train"]["images"], data["eval"]["images"]) == (16, 4)
    assert data["train"]["split_file_sha256"] == data["eval"]["split_file_sha256"] == file_sha256(root / "splits.csv")
