"""FGVC-Aircraft loading on a synthetic copy of its on-disk layout; ImageFolder; transforms."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import MakeDataset
from PIL import Image
from torchvision import transforms

from fgvc.core.config import DATASETS, make_config
from fgvc.core.errors import ConfigError, DatasetError
from fgvc.data import (
    FGVC_FOLDER,
    FGVC_URL,
    KINDS,
    Augment,
    build_dataset,
    build_imagefolder,
    check_data,
    dataset_kind,
    eval_transform,
    normalize,
    read_hierarchy,
)
from fgvc.data.normalization import IMAGENET


def annotation(root: Path, name: str) -> list[str]:
    return (root / FGVC_FOLDER / "data" / name).read_text().splitlines()


@pytest.mark.parametrize("split", ["train", "val", "trainval", "test"])
def test_split_sizes_and_labels_follow_the_annotation_files(synthetic_root: Path, split: str) -> None:
    dataset = build_dataset(synthetic_root, split)
    lines = annotation(synthetic_root, f"images_variant_{split}.txt")
    assert len(dataset) == len(lines)
    _, first_name = lines[0].split(" ", 1)
    assert dataset.classes[dataset[0][1]] == first_name


def test_trainval_is_train_plus_val(synthetic_root: Path) -> None:
    sizes = {s: len(build_dataset(synthetic_root, s)) for s in ("train", "val", "trainval")}
    assert sizes["trainval"] == sizes["train"] + sizes["val"]


def test_class_order_is_the_line_order_of_variants_txt(synthetic_root: Path) -> None:
    assert build_dataset(synthetic_root, "test").classes == annotation(synthetic_root, "variants.txt")


@pytest.mark.parametrize("level", ["variant", "family", "manufacturer"])
def test_the_dataset_reads_what_torchvision_reads(synthetic_root: Path, level: str) -> None:
    """fgvc reads the annotation files itself; it must agree with torchvision's FGVCAircraft item for item."""
    from torchvision.datasets import FGVCAircraft

    for split in ("trainval", "test"):
        ours, theirs = build_dataset(synthetic_root, split, level), FGVCAircraft(synthetic_root, split, level)
        assert ours.classes == theirs.classes
        assert [(Path(path), label) for path, label in ours.samples] == [
            (Path(path), label) for path, label in zip(theirs._image_files, theirs._labels)]


def test_annotation_files_with_trailing_spaces_and_windows_line_ends_read_as_torchvision_reads_them(
        tiny_root: Path, tmp_path: Path) -> None:
    from torchvision.datasets import FGVCAircraft

    root = tmp_path / "edited"
    shutil.copytree(tiny_root, root)
    data = root / FGVC_FOLDER / "data"
    for name in ("variants.txt", "images_variant_test.txt"):
        lines = (data / name).read_text().splitlines()
        (data / name).write_bytes("".join(f"{line} \r\n" for line in lines).encode())
    assert check_data(root)[1] == []
    ours, theirs = build_dataset(root, "test"), FGVCAircraft(root, "test")
    assert ours.classes == theirs.classes and [label for _, label in ours.samples] == theirs._labels


def test_names_with_slash_and_space_load(make_dataset: MakeDataset) -> None:
    dataset = build_dataset(make_dataset(20, 3, size=(96, 88)), "test")
    assert any("/" in c for c in dataset.classes) and any(" " in c for c in dataset.classes)
    labels = {dataset.classes[dataset[i][1]] for i in range(len(dataset))}
    assert labels == set(dataset.classes)


def test_banner_is_cropped_before_any_transform(synthetic_root: Path) -> None:
    dataset = build_dataset(synthetic_root, "train")
    image, _ = dataset[0]
    with Image.open(dataset.samples[0][0]) as raw:
        assert image.size == (raw.width, raw.height - 20)
    uncropped, _ = build_dataset(synthetic_root, "train", banner_px=0)[0]
    assert uncropped.size == (raw.width, raw.height)


@pytest.mark.parametrize(("level", "file"), [("family", "families.txt"), ("manufacturer", "manufacturers.txt")])
def test_family_and_manufacturer_levels(synthetic_root: Path, level: str, file: str) -> None:
    dataset = build_dataset(synthetic_root, "test", level=level)
    assert dataset.classes == annotation(synthetic_root, file)
    assert 1 < len(dataset.classes) < len(annotation(synthetic_root, "variants.txt"))


def test_hierarchy_maps_every_variant_to_its_family(synthetic_root: Path) -> None:
    hierarchy = read_hierarchy(synthetic_root, "test")
    family_of, families = hierarchy["family"]
    variants = annotation(synthetic_root, "variants.txt")
    by_id = dict(line.split(" ", 1) for line in annotation(synthetic_root, "images_family_test.txt"))
    for line in annotation(synthetic_root, "images_variant_test.txt"):
        image_id, variant = line.split(" ", 1)
        assert families[family_of[variants.index(variant)]] == by_id[image_id]


def test_missing_dataset_names_the_path_the_url_and_the_demo(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        build_dataset(tmp_path, "trainval")
    message = str(err.value)
    assert str(tmp_path) in message and FGVC_URL in message and "fgvc download" in message and "make demo" in message


def test_missing_annotation_file_is_named(synthetic_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root, copy)
    (copy / FGVC_FOLDER / "data" / "images_variant_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"images_variant_test\.txt"):
        build_dataset(copy, "test")


def test_each_kind_of_dataset_is_one_object_found_by_the_name_the_config_takes() -> None:
    assert list(KINDS) == list(DATASETS) and all(dataset_kind(name).name == name for name in DATASETS)
    with pytest.raises(ConfigError, match="unknown dataset 'coco': expected one of fgvc-aircraft, imagefolder"):
        dataset_kind("coco")
    with pytest.raises(ConfigError, match=r"split_file='s\.csv' is invalid: expected None for fgvc-aircraft"):
        make_config("demo", split_file="s.csv")
    assert make_config("demo", dataset="imagefolder", train_split="mine").train_split == "mine"


def test_imagefolder_layout(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for name, colour in (("Cessna 172", "red"), ("F-16A-B", "blue")):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (40, 30), colour).save(tmp_path / split / name / "a.jpg")
    dataset = build_imagefolder(tmp_path, "train")
    assert dataset.classes == ["Cessna 172", "F-16A-B"] and len(dataset) == 2
    with pytest.raises(DatasetError, match="val"):
        build_imagefolder(tmp_path, "val")


def test_transforms_give_normalised_square_tensors(synthetic_root: Path) -> None:
    image, _ = build_dataset(synthetic_root, "train")[0]
    augment, rng = Augment(64), np.random.default_rng(0)
    train = augment(image, rng)
    evaluation = eval_transform(64, IMAGENET)
    assert train.shape == (3, 64, 64) and train.dtype == torch.uint8 and evaluation(image).shape == (3, 64, 64)
    assert torch.equal(evaluation(image), evaluation(image))
    assert not torch.equal(augment(image, rng), train)  # augmentation is random
    normalised = normalize(train[None], IMAGENET)[0]
    assert normalised.dtype == torch.float32 and -3 < float(normalised.mean()) < 3
    expected = transforms.Normalize(IMAGENET.mean, IMAGENET.std)(train.float() / 255)
    assert torch.allclose(normalised, expected, atol=1e-5)  # what ToTensor + Normalize would give
