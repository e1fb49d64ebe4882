"""The synthetic FGVC-Aircraft: layout, torchvision compatibility, hierarchy, pixels, determinism."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import FGVCAircraft

from fgvc.core.errors import ConfigError, FolderError
from fgvc.data.synthetic import write_synthetic_dataset
from fgvc.data.synthetic_aircraft import MAX_CLASSES, MAX_HARD_CLASSES, aircraft, classes
from fgvc.data.synthetic_render import _CLOUD_RADIUS, BANNER_HEIGHT, render

SPLITS = ("train", "val", "trainval", "test")
LEVELS = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
SIZE = (160, 140)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-class, 6-per-class dataset at the default image size."""
    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, num_classes=12, per_class=6, size=SIZE, seed=0)
    return out


def data_dir(out: Path) -> Path:
    """The folder holding the annotation files and images/."""
    return out / "fgvc-aircraft-2013b" / "data"


def read_lines(path: Path) -> list[str]:
    """Lines of a text file without their newlines."""
    return path.read_text(encoding="utf-8").splitlines()


def read_labels(out: Path, level: str, split: str) -> dict[str, str]:
    """image id -> class name from images_<level>_<split>.txt."""
    pairs = [line.split(" ", 1) for line in read_lines(data_dir(out) / f"images_{level}_{split}.txt")]
    return dict(pairs)


def read_boxes(out: Path) -> dict[str, tuple[int, int, int, int]]:
    """image id -> (xmin, ymin, xmax, ymax) from images_box.txt."""
    boxes = {}
    for line in read_lines(data_dir(out) / "images_box.txt"):
        image_id, *coords = line.split()
        boxes[image_id] = tuple(int(c) for c in coords)
    return boxes


def labels_of(ds: FGVCAircraft) -> list[int]:
    """Every target of a dataset, read through its public interface."""
    return [ds[i][1] for i in range(len(ds))]


def pixels(out: Path, image_id: str) -> np.ndarray:
    """An image as a float HxWx3 array."""
    return np.asarray(Image.open(data_dir(out) / "images" / f"{image_id}.jpg").convert("RGB"), np.float32)


def test_layout_files_exist(out: Path) -> None:
    data = data_dir(out)
    for name in LEVELS.values():
        assert (data / name).is_file()
    for level in LEVELS:
        for split in SPLITS:
            assert (data / f"images_{level}_{split}.txt").is_file()
    assert (data / "images_box.txt").is_file()
    images = sorted(p.stem for p in (data / "images").glob("*.jpg"))
    assert len(images) == 12 * 6
    assert all(len(i) == 7 and i.isdigit() for i in images)
    ids_in_file_order = list(read_labels(out, "variant", "trainval")) + list(read_labels(out, "variant", "test"))
    assert ids_in_file_order != sorted(ids_in_file_order)  # ids are shuffled, not numbered by class


@pytest.mark.parametrize("level", list(LEVELS))
def test_torchvision_loads_every_split(out: Path, level: str) -> None:
    names = read_lines(data_dir(out) / LEVELS[level])
    assert len(names) == {"variant": 12, "family": 4, "manufacturer": 2}[level]
    for split in SPLITS:
        ds = FGVCAircraft(str(out), split=split, annotation_level=level)
        assert ds.classes == names  # class index = line order
        assert len(ds) == len(read_lines(data_dir(out) / f"images_{level}_{split}.txt"))
        assert set(labels_of(ds)) == set(range(len(names)))  # every class in every split
        image, label = ds[0]
        assert image.size == SIZE and image.mode == "RGB"
        assert 0 <= label < len(names)


def test_splits_partition_the_images(out: Path) -> None:
    train, val, test = (set(read_labels(out, "variant", s)) for s in ("train", "val", "test"))
    trainval = read_labels(out, "variant", "trainval")
    assert not train & val and not train & test and not val & test
    assert set(trainval) == train | val and len(trainval) == len(train) + len(val)
    assert train | val | test == {p.stem for p in (data_dir(out) / "images").glob("*.jpg")}
    for split, size in (("train", 2), ("val", 2), ("test", 2)):
        per_class = defaultdict(int)
        for name in read_labels(out, "variant", split).values():
            per_class[name] += 1
        assert sorted(per_class.values()) == [size] * 12


def test_names_with_slash_and_space_round_trip(out: Path) -> None:
    for level in ("variant", "family"):
        names = read_lines(data_dir(out) / LEVELS[level])
        assert any("/" in n for n in names) and any(" " in n for n in names)
        assert all(n == n.strip() and n for n in names)
        ds = FGVCAircraft(str(out), split="test", annotation_level=level)
        expected = list(read_labels(out, level, "test").values())
        assert [ds.classes[label] for label in labels_of(ds)] == expected


def test_hierarchy_is_consistent(out: Path) -> None:
    labels = {level: {**read_labels(out, level, "trainval"), **read_labels(out, level, "test")} for level in LEVELS}
    assert labels["variant"].keys() == labels["family"].keys() == labels["manufacturer"].keys()
    family_of, maker_of, maker_of_family = defaultdict(set), defaultdict(set), defaultdict(set)
    for image_id, variant in labels["variant"].items():
        family_of[variant].add(labels["family"][image_id])
        maker_of[variant].add(labels["manufacturer"][image_id])
        maker_of_family[labels["family"][image_id]].add(labels["manufacturer"][image_id])
    assert all(len(f) == 1 for f in family_of.values())
    assert all(len(m) == 1 for m in maker_of.values())
    assert all(len(m) == 1 for m in maker_of_family.values())
    variants_per_family = defaultdict(int)
    for (family,) in family_of.values():
        variants_per_family[family] += 1
    assert len(variants_per_family) > 1 and min(variants_per_family.values()) >= 2
    assert len({m for (m,) in maker_of_family.values()}) > 1


SHAPE_FIELDS = ("nose", "width", "canopy", "sweep", "wing_x", "long_span", "engines", "stretch", "tail")


@pytest.mark.parametrize(("num_classes", "difficulty"), [
    *[(n, "easy") for n in (2, 3, 5, 12, 13, 30, 100, 150, 1000, MAX_CLASSES)],
    *[(n, "hard") for n in (2, 3, 5, 12, 13, 100, MAX_HARD_CLASSES)],
])
def test_class_names_unique_and_tidy(num_classes: int, difficulty: str) -> None:
    variants = classes(num_classes, difficulty)
    assert len(variants) == num_classes
    for level in ("name", "family", "manufacturer"):
        names = [getattr(v, level) for v in variants]
        assert all(n == n.strip() and n and "\n" not in n for n in names)
    assert len({v.name for v in variants}) == num_classes
    family_makers = {(v.family, v.manufacturer) for v in variants}
    assert len(family_makers) == len({f for f, _ in family_makers})  # a family name belongs to one maker
    shapes = {tuple(getattr(v, field) for field in SHAPE_FIELDS) for v in variants}
    assert len(shapes) == num_classes  # every class has its own shape
    families, makers = {v.family for v in variants}, {v.manufacturer for v in variants}
    assert len(families) >= 2 and len(makers) >= 2  # no annotation level is a single class
    if num_classes >= 12:
        assert len(families) > len(makers) and len(variants) > len(families)  # several per parent


@pytest.mark.parametrize("num_classes", [6, 12, 100])
def test_hard_variants_of_a_family_differ_only_by_their_tail(num_classes: int) -> None:
    easy, hard = classes(num_classes), classes(num_classes, "hard")
    assert [(v.name, v.family, v.manufacturer) for v in easy] == [(v.name, v.family, v.manufacturer) for v in hard]
    by_family = defaultdict(list)
    for v in hard:
        by_family[v.family].append(v)
    family_shapes = set()
    for siblings in by_family.values():
        shapes = {tuple(getattr(v, field) for field in SHAPE_FIELDS[:-1]) for v in siblings}
        assert len(shapes) == 1  # wings, fuselage, engines and stretch belong to the family
        assert len({v.tail for v in siblings}) == len(siblings)
        family_shapes |= shapes
    assert len(family_shapes) == len(by_family)  # families look different without their tails
    # Drawn: siblings differ in the stabilisers (parts 2 and 3) and nowhere else.
    first, second = by_family[hard[0].family][:2]
    parts = [aircraft(v, stripe=False) for v in (first, second)]
    assert [tone for _, tone in parts[0]] == [tone for _, tone in parts[1]]
    differ = [k for k, (a, b) in enumerate(zip(parts[0], parts[1], strict=True)) if a != b]
    assert differ == [2, 3]


@pytest.mark.parametrize("tail", [0, 1, 2])
def test_the_cloud_covers_every_tail(tail: int) -> None:
    var = next(v for v in classes(6, "hard") if v.tail == tail)
    stabilisers = aircraft(var, stripe=False)[2:4]
    end = -var.length / 2
    reach = max(math.dist((x, y), (end, 0.0)) for poly, _ in stabilisers for x, y in poly)
    assert reach < 0.9 * _CLOUD_RADIUS  # inside the cloud's opaque core


def test_a_hidden_tail_changes_only_the_picture_near_it() -> None:
    var = classes(6, "hard")[0]
    seen, box = render(var, (160, 140), np.random.default_rng(1))
    hidden, hidden_box = render(var, (160, 140), np.random.default_rng(1), hide_tail=1.0)
    assert box == hidden_box  # the box holds the whole aircraft, hidden parts included
    picture = slice(0, 140 - BANNER_HEIGHT)
    changed = np.abs(np.asarray(hidden, np.float32)[picture] - np.asarray(seen, np.float32)[picture]).sum(2) > 60
    assert 0.02 < changed.mean() < 0.3  # a cloud, not noise, and not the whole picture


def test_hard_set_has_the_same_files_and_records_its_difficulty(tmp_path: Path) -> None:
    kwargs = {"num_classes": 6, "per_class": 3, "size": (64, 84)}
    easy = write_synthetic_dataset(tmp_path / "easy", **kwargs)
    hard = write_synthetic_dataset(tmp_path / "hard", difficulty="hard", **kwargs)
    for name in [*LEVELS.values(), "images_variant_test.txt", "images_family_test.txt"]:
        assert (easy / "data" / name).read_text() == (hard / "data" / name).read_text()
    assert "difficulty=hard" in (hard / "synthetic.txt").read_text()
    easy_images = {p.name: p.read_bytes() for p in (easy / "data" / "images").glob("*.jpg")}
    hard_images = {p.name: p.read_bytes() for p in (hard / "data" / "images").glob("*.jpg")}
    assert easy_images.keys() == hard_images.keys() and easy_images != hard_images


def test_many_classes_few_images(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path, num_classes=100, per_class=3, size=(48, 68), seed=3)
    for level in LEVELS:
        names = read_lines(data_dir(tmp_path) / LEVELS[level])
        for split in ("train", "val", "test"):
            ds = FGVCAircraft(str(tmp_path), split=split, annotation_level=level)
            assert set(labels_of(ds)) == set(range(len(names)))
    assert len(read_lines(data_dir(tmp_path) / "families.txt")) > 20


def test_images_have_the_size_and_a_bottom_banner(out: Path) -> None:
    for image_id in read_boxes(out):
        image = pixels(out, image_id)
        assert image.shape == (SIZE[1], SIZE[0], 3)
        luma = image.mean(2)
        banner, picture = luma[-BANNER_HEIGHT:], luma[:-BANNER_HEIGHT]
        assert np.median(banner) < 70 < np.median(picture)  # a dark strip under a lighter sky
        assert banner.max() > 130  # with light pseudo-text on it
        assert np.median(luma[-BANNER_HEIGHT - 3:-BANNER_HEIGHT]) > np.median(banner) + 40  # starts exactly there


def test_boxes_lie_in_the_picture_and_hold_the_aircraft(out: Path) -> None:
    boxes = read_boxes(out)
    assert boxes.keys() == {p.stem for p in (data_dir(out) / "images").glob("*.jpg")}
    width, picture_height = SIZE[0], SIZE[1] - BANNER_HEIGHT
    for image_id, (x0, y0, x1, y1) in boxes.items():
        assert 1 <= x0 < x1 <= width and 1 <= y0 < y1 <= picture_height  # 1-based, above the banner
        assert (x1 - x0 + 1) * (y1 - y0 + 1) > 0.15 * width * picture_height
        picture = pixels(out, image_id)[:picture_height]
        inside = np.zeros(picture.shape[:2], bool)
        inside[y0 - 1:y1, x0 - 1:x1] = True
        # The sky is a vertical gradient: model the background row by row from outside the box.
        rows = np.flatnonzero((~inside).any(1))
        sky = np.stack([np.median(picture[r][~inside[r]], axis=0) for r in rows])
        all_rows = np.arange(picture_height)
        background = np.stack([np.interp(all_rows, rows, sky[:, c]) for c in range(3)], axis=1)
        distance = np.abs(picture - background[:, None]).sum(2)
        within, outside = distance[inside].mean(), distance[~inside].mean()
        assert within > 1.5 * outside and within > outside + 15
        # Tight: a 2-px band along each edge of the box touches the aircraft.
        for band in (distance[y0 - 1:y0 + 1, x0 - 1:x1], distance[y1 - 2:y1, x0 - 1:x1],
                     distance[y0 - 1:y1, x0 - 1:x0 + 1], distance[y0 - 1:y1, x1 - 2:x1]):
            assert band.max() > 25


def test_colour_and_position_vary_within_each_class(out: Path) -> None:
    boxes = read_boxes(out)
    by_class = defaultdict(list)
    for image_id, name in {**read_labels(out, "variant", "trainval"), **read_labels(out, "variant", "test")}.items():
        by_class[name].append(image_id)
    for image_ids in by_class.values():
        centres = np.array([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in (boxes[i] for i in image_ids)])
        assert centres.std(0).max() > 2  # the aircraft moves
        sky = np.array([pixels(out, i)[:5].mean((0, 1)) for i in image_ids])
        assert sky.std(0).max() > 8  # the sky changes colour

def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    def files(out: Path) -> dict[str, bytes]:
        root = out / "fgvc-aircraft-2013b"
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    kwargs = {"num_classes": 3, "per_class": 3, "size": (64, 84)}
    first = files(write_synthetic_dataset(tmp_path / "a", seed=5, **kwargs).parent)
    second = files(write_synthetic_dataset(tmp_path / "b", seed=5, **kwargs).parent)
    other = files(write_synthetic_dataset(tmp_path / "c", seed=6, **kwargs).parent)
    assert first == second
    assert first["data/variants.txt"] == other["data/variants.txt"]  # the classes do not depend on the seed
    first_images = sorted(v for k, v in first.items() if k.endswith(".jpg"))
    other_images = sorted(v for k, v in other.items() if k.endswith(".jpg"))
    assert not set(first_images) & set(other_images)


def test_rewrites_its_own_output_but_not_a_foreign_folder(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path, num_classes=4, per_class=3, size=(64, 84))
    root = write_synthetic_dataset(tmp_path, num_classes=2, per_class=3, size=(64, 84))
    assert len(list((root / "data" / "images").glob("*.jpg"))) == 6  # no stale images left
    foreign = tmp_path / "real"
    (foreign / "fgvc-aircraft-2013b" / "data").mkdir(parents=True)
    (foreign / "fgvc-aircraft-2013b" / "data" / "variants.txt").write_text("707-320\n")
    with pytest.raises(FolderError, match="not a synthetic dataset"):
        write_synthetic_dataset(foreign)
    assert (foreign / "fgvc-aircraft-2013b" / "data" / "variants.txt").read_text() == "707-320\n"


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"num_classes": 1}, r"num_classes .*between 2 and.*got 1"),
    ({"num_classes": MAX_CLASSES + 1}, rf"num_classes .*got {MAX_CLASSES + 1}"),
    ({"num_classes": 2.5}, r"num_classes .*got 2\.5"),
    ({"per_class": 2}, r"per_class .*>= 3.*got 2"),
    ({"seed": -1}, r"seed .*got -1"),
    ({"size": (47, 100)}, r"size .*\(48, 68\).*got \(47, 100\)"),
    ({"size": (100, 67)}, r"size .*got \(100, 67\)"),
    ({"size": (100,)}, r"size .*got \(100,\)"),
    ({"difficulty": "medium"}, r"difficulty .*easy, hard.*got 'medium'"),
])
def test_bad_arguments_raise_a_config_error(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        write_synthetic_dataset(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing written
