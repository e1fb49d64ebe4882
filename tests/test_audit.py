"""fgvc audit on a constructed imagefolder of real photos (scikit-image's): four classes, each six mild
augmentations of one photo, and planted faults: an exact copy of a training photo in test, a resized and recompressed
copy, a crop, one photo under two labels, a label swap, a truncated file, a tiny and a stretched photo."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import MakeDataset
from PIL import Image, ImageEnhance
from readme_checks import documented_commands
from skimage import data

from fgvc.apps import audit_embeddings
from fgvc.apps.audit import Audit, run_audit
from fgvc.apps.audit_copies import Pair
from fgvc.apps.audit_photos import split_order
from fgvc.apps.cli import main
from fgvc.core.defaults import SPLIT_FILE
from fgvc.core.errors import DatasetError
from fgvc.data.split import read_exclusions, read_split_file, split_folder

BASES = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea, "rocket": data.rocket}
PER_CLASS = 6
SIZE = (224, 168)


def augmented(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A mild augmentation: a random crop of 85 to 100 % of each side, brightness within 10 %, at ``SIZE``."""
    scale = rng.uniform(0.85, 1.0)
    width, height = int(photo.width * scale), int(photo.height * scale)
    left, top = rng.integers(0, photo.width - width + 1), rng.integers(0, photo.height - height + 1)
    crop = photo.crop((left, top, left + width, top + height)).resize(SIZE)
    return ImageEnhance.Brightness(crop).enhance(rng.uniform(0.9, 1.1))


def folder_digest(root: Path) -> str:
    """The sha256 of every file's path and bytes under ``root``: any change shows."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def write_photos(root: Path) -> None:
    """Train: ``PER_CLASS`` augmentations of each base photo, a copy of astronaut_0 filed as coffee (one photo,
    two labels) and an augmented chelsea filed as rocket (a label swap). Test (no rocket): an exact copy of
    astronaut_1, coffee_0 resized and recompressed, a crop of chelsea_0, a truncated file, a tiny and a stretched
    photo."""
    rng = np.random.default_rng(0)
    photos = {name: Image.fromarray(load()).convert("RGB") for name, load in BASES.items()}
    for name, photo in photos.items():
        (root / "train" / name).mkdir(parents=True)
        for index in range(PER_CLASS):
            augmented(photo, rng).save(root / "train" / name / f"{name}_{index}.jpg", quality=90)
    augmented(photos["chelsea"], rng).save(root / "train" / "rocket" / "swapped.jpg", quality=90)
    shutil.copy(root / "train/astronaut/astronaut_0.jpg", root / "train/coffee/twin.jpg")
    for name in ("astronaut", "coffee", "chelsea"):
        (root / "test" / name).mkdir(parents=True)
    shutil.copy(root / "train/astronaut/astronaut_1.jpg", root / "test/astronaut/leak.jpg")
    with Image.open(root / "train/coffee/coffee_0.jpg") as image:
        image.resize((150, 112)).save(root / "test/coffee/resized.jpg", quality=60)
    with Image.open(root / "train/chelsea/chelsea_0.jpg") as image:
        image.crop((30, 20, 210, 155)).resize(SIZE).save(root / "test/chelsea/crop.jpg", quality=90)
    whole = (root / "train/chelsea/chelsea_1.jpg").read_bytes()
    (root / "test/chelsea/broken.jpg").write_bytes(whole[: len(whole) // 2])
    augmented(photos["coffee"], rng).resize((48, 36)).save(root / "test/coffee/tiny.jpg")
    photos["astronaut"].crop((0, 200, 512, 340)).save(root / "test/astronaut/wide.jpg")


@dataclass
class Audited:
    root: Path
    out: Path
    audit: Audit
    before: str


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """The planted folder audited once by the documented command (ROOT and the output folder put in)."""
    root, out = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("audit") / "audit"
    write_photos(root)
    before = folder_digest(root)
    command = next(c for c in documented_commands() if c.startswith("fgvc audit "))
    name, *flags = command.split()[1:]
    assert main([name, *(str(root) if arg == "ROOT" else str(out) if arg == "audit" else arg for arg in flags),
                 "--device", "cpu"]) == 0
    return Audited(root, out, run_audit(root, "imagefolder", out, device="cpu"), before)


def named_pairs(audited: Audited) -> dict[tuple[str, str], Pair]:
    """The audit's pairs by (kept photo, listed photo) names."""
    photos = audited.audit.photos
    return {(photos[p.keep].name, photos[p.drop].name): p for p in audited.audit.pairs}


def test_an_exact_copy_in_test_is_a_leak_and_its_test_copy_is_listed(audited: Audited) -> None:
    pair = named_pairs(audited)[("train/astronaut/astronaut_1.jpg", "test/astronaut/leak.jpg")]
    assert pair.kind == "leak" and pair.exact and pair.dhash_bits == 0 and pair.similarity > 0.999
    excluded = read_exclusions(audited.out / "exclude.txt", audited.root)
    assert "test/astronaut/leak.jpg" in excluded and "train/astronaut/astronaut_1.jpg" not in excluded
    line = next(line for line in (audited.out / "exclude.txt").read_text().splitlines()
                if line.startswith("test/astronaut/leak.jpg"))
    assert "exact copy of train/astronaut/astronaut_1.jpg" in line


def test_a_resized_and_recompressed_copy_is_found_by_the_perceptual_hash(audited: Audited) -> None:
    pair = named_pairs(audited)[("train/coffee/coffee_0.jpg", "test/coffee/resized.jpg")]
    assert pair.kind == "leak" and not pair.exact and pair.dhash_bits is not None


def test_a_crop_is_found_by_the_embeddings(audited: Audited) -> None:
    pair = named_pairs(audited)[("train/chelsea/chelsea_0.jpg", "test/chelsea/crop.jpg")]
    assert pair.kind == "leak" and pair.similarity > 0.91 and pair.dhash_bits is None


def test_one_photo_under_two_labels_is_a_conflict_and_the_unlikely_label_listed(audited: Audited) -> None:
    pair = named_pairs(audited)[("train/astronaut/astronaut_0.jpg", "train/coffee/twin.jpg")]
    assert pair.kind == "conflict" and pair.exact


def test_different_photos_are_never_paired(audited: Audited) -> None:
    photos = audited.audit.photos
    planted = {"train/coffee/twin.jpg": "astronaut", "train/rocket/swapped.jpg": "chelsea"}
    for pair in audited.audit.pairs:
        bases = {planted.get(photos[i].name, photos[i].label) for i in (pair.keep, pair.drop)}
        assert len(bases) == 1, (photos[pair.keep].name, photos[pair.drop].name)


def test_the_label_swap_ranks_at_the_top_of_the_doubtful_labels(audited: Audited) -> None:
    doubts = audited.audit.doubts
    top = {audited.audit.photos[d.photo].name: d for d in doubts[:2]}
    assert set(top) == {"train/rocket/swapped.jpg", "train/coffee/twin.jpg"}
    assert top["train/rocket/swapped.jpg"].suggested == "chelsea"
    assert top["train/coffee/twin.jpg"].suggested == "astronaut"


def test_bad_tiny_stretched_and_missing_are_reported(audited: Audited) -> None:
    markdown = (audited.out / "audit.md").read_text()
    assert [photo.name for photo, _ in audited.audit.bad] == ["test/chelsea/broken.jpg"]
    assert "test/chelsea/broken.jpg: damaged image" in markdown
    odd = {audited.audit.photos[i].name: why for i, _, _, why in audited.audit.odd_sizes}
    assert set(odd) == {"test/coffee/tiny.jpg", "test/astronaut/wide.jpg"}
    assert "short side 36 px" in odd["test/coffee/tiny.jpg"] and "aspect 3.7:1" in odd["test/astronaut/wide.jpg"]
    assert "Missing from test: rocket." in markdown
    report = json.loads((audited.out / "audit.json").read_text())
    assert report["class_counts"]["rocket"] == {"test": 0, "train": 7}
    assert report["leak_counts"][0]["split"] == "test" and report["leak_counts"][0]["copy_in"] == "train"


def test_the_contact_sheet_names_every_flagged_file_and_shows_its_thumbnail(audited: Audited) -> None:
    sheet = (audited.out / "audit.html").read_text()
    flagged = [audited.out / "exclude.txt"]
    names = {line.split("  #")[0] for line in flagged[0].read_text().splitlines() if not line.startswith("#")}
    assert {"test/astronaut/leak.jpg", "train/rocket/swapped.jpg", "test/chelsea/broken.jpg"} <= names
    for name in names:
        assert name in sheet, name
    thumbnails = re.findall(r'<img src="(thumbs/[0-9a-f]{16}\.jpg)"', sheet)
    assert thumbnails and all((audited.out / thumb).is_file() for thumb in thumbnails)


def test_nothing_in_the_data_folder_changes(audited: Audited) -> None:
    assert folder_digest(audited.root) == audited.before


def test_a_second_audit_reads_the_embeddings_from_the_cache(audited: Audited, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the backbone ran again")

    monkeypatch.setattr(audit_embeddings, "compute_embeddings", refuse)
    again = run_audit(audited.root, "imagefolder", audited.out, device="cpu")
    assert [(p.keep, p.drop, p.kind) for p in again.pairs] == [(p.keep, p.drop, p.kind) for p in audited.audit.pairs]


def test_fgvc_aircraft_is_audited_over_train_val_and_test(make_dataset: MakeDataset, tmp_path: Path) -> None:
    root = make_dataset(3, 6)
    audit = run_audit(root, "fgvc-aircraft", tmp_path / "audit", device="cpu")
    assert audit.splits == ["train", "val", "test"] and len(audit.photos) == 18
    assert all(photo.name.startswith("fgvc-aircraft-2013b/data/images/") for photo in audit.photos)
    assert {photo.split for photo in audit.photos} == {"train", "val", "test"}


def test_a_flat_folder_is_audited_through_its_split_file_which_keeps_a_copy_in_one_split(tmp_path: Path) -> None:
    rng, root = np.random.default_rng(1), tmp_path / "photos"
    for name in ("coffee", "rocket"):
        (root / name).mkdir(parents=True)
        for index in range(5):
            augmented(Image.fromarray(BASES[name]()), rng).save(root / name / f"{index}.jpg")
    shutil.copy(root / "coffee/0.jpg", root / "rocket/filed twice.jpg")
    split_folder(root, seed=0)
    audit = run_audit(root, "imagefolder", tmp_path / "audit", device="cpu")
    assert audit.splits == split_order({row.split for row in read_split_file(root / SPLIT_FILE).values()})
    assert len(audit.photos) == 11 and all(photo.name.count("/") == 1 for photo in audit.photos)
    pair = next(p for p in audit.pairs if p.exact)
    assert pair.kind == "conflict"
    assert {audit.photos[pair.keep].name, audit.photos[pair.drop].name} == {"coffee/0.jpg", "rocket/filed twice.jpg"}


def test_a_flat_folder_without_a_split_file_is_sent_to_fgvc_split(tmp_path: Path) -> None:
    (tmp_path / "Bf 109E").mkdir()
    Image.new("RGB", (80, 60)).save(tmp_path / "Bf 109E" / "001.jpg")
    with pytest.raises(DatasetError, match=r"001\.jpg lies in a class folder with no split file.*fgvc split"):
        run_audit(tmp_path, "imagefolder", tmp_path / "audit")


def test_the_docs_give_the_audit_command() -> None:
    assert any(c.startswith("fgvc audit --dataset imagefolder --data-root ROOT --out audit")
               for c in documented_commands())
