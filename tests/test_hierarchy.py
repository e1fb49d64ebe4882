"""The label hierarchy for every dataset: FGVC-Aircraft's annotation files or an imagefolder's ``hierarchy.csv``
give the family and manufacturer roll-ups, and the summed probability of the top family and manufacturer."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from readme_checks import page_with

from fgvc.apps.cli import main
from fgvc.apps.predict_output import coarse_cells, format_coarse
from fgvc.core.config import make_config
from fgvc.core.errors import DatasetError
from fgvc.core.runtime import Runtime
from fgvc.data import check_data, dataset_hierarchy, hierarchy_names, read_hierarchy
from fgvc.data.hierarchy import HIERARCHY_FILE, Hierarchy, ParentLevel, read_hierarchy_csv
from fgvc.data.layout import image_path, read_labels
from fgvc.evaluation.analysis import summarize
from fgvc.models.checkpoint import load_trained
from fgvc.models.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["737-700", "737-800", "A320", "Spitfire Mk I"]
CSV_TEXT = ("class,family,manufacturer\n737-800,737,Boeing\n737-700,737,Boeing\n\nA320,A320,Airbus\n"
            "Spitfire Mk I,Spitfire,Supermarine\n")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_hierarchy_csv_maps_every_class_to_its_parents(tmp_path: Path) -> None:
    hierarchy = read_hierarchy_csv(write(tmp_path / HIERARCHY_FILE, CSV_TEXT), CLASSES)
    assert list(hierarchy) == ["family", "manufacturer"]
    assert hierarchy_names(hierarchy) == {"family": ["737", "737", "A320", "Spitfire"],
                                          "manufacturer": ["Boeing", "Boeing", "Airbus", "Supermarine"]}
    only_makers = read_hierarchy_csv(write(tmp_path / "makers.csv", "class,manufacturer\n737-700,Boeing\n"
                                           "737-800,Boeing\nA320,Airbus\nSpitfire Mk I,Supermarine\n"), CLASSES)
    assert hierarchy_names(only_makers) == {"manufacturer": hierarchy_names(hierarchy)["manufacturer"]}


@pytest.mark.parametrize(("text", "line", "expected"), [
    ("class,family,model\n737-700,737,x\n", 1, "expected 'class' then family and/or manufacturer"),
    ("family,class\n737,737-700\n", 1, "expected 'class' then"),
    (CSV_TEXT + "737-700,A320,Airbus\n", 7, "'737-700' is already on line 3"),
    (CSV_TEXT.replace("A320,A320,Airbus", "A320,,Airbus"), 5, "expected 3 non-empty values"),
    ('class,family\n"Hurricane\nMk I",Hurricane\n', 3, "'Hurricane\\nMk I' is not a class folder"),
])
def test_hierarchy_csv_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path / HIERARCHY_FILE, text)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))} line {line}: .*{re.escape(expected)}"):
        read_hierarchy_csv(path, CLASSES)


def test_hierarchy_csv_without_a_class_names_the_file_and_the_class(tmp_path: Path) -> None:
    path = write(tmp_path / HIERARCHY_FILE, CSV_TEXT.replace("A320,A320,Airbus\n", ""))
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}: no line for class 'A320'"):
        read_hierarchy_csv(path, CLASSES)


def test_the_documented_hierarchy_csv_is_read_as_documented(tmp_path: Path) -> None:
    text = page_with(r"```csv\n").read_text()
    [block] = re.findall(r"```csv\n(.*?)```", text, re.S)
    classes = sorted(row["class"] for row in csv.DictReader(io.StringIO(block)))
    hierarchy = read_hierarchy_csv(write(tmp_path / HIERARCHY_FILE, block), classes)
    assert set(hierarchy) == {"family", "manufacturer"} and f"ROOT/{HIERARCHY_FILE}" in text


def test_parent_scores_are_the_sums_of_their_variants() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 7))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    parent_of = np.array([2, 0, 0, 1, 2, 2, 0])
    hierarchy = Hierarchy({"family": ParentLevel(parent_of, ["a", "b", "c", "d"])})
    summed = hierarchy.summed(probabilities, "family")
    assert summed.shape == (20, 4) and np.allclose(summed.sum(1), 1) and np.all(summed[:, 3] == 0)
    for parent in range(3):
        assert np.allclose(summed[:, parent], probabilities[:, parent_of == parent].sum(1))
    best, probability = hierarchy.top_parents(probabilities, "family")
    assert np.array_equal(best, summed.argmax(1)) and np.allclose(probability, summed.max(1))
    with pytest.raises(ValueError, match=r"the family of each class must lie in \[0, 1\]"):
        Hierarchy({"family": ParentLevel(parent_of, ["a", "b"])})


def test_every_roll_up_breaks_a_tie_to_the_first_name_and_reads_back_from_a_checkpoint(synthetic_root: Path
                                                                                        ) -> None:
    hierarchy = Hierarchy.from_names({"family": ["737", "A320", "737", "A320"]})  # as a checkpoint carries it
    assert hierarchy["family"].names == ["737", "A320"] and hierarchy["family"].parent_of.tolist() == [0, 1, 0, 1]
    tied = np.array([[0.125, 0.375, 0.375, 0.125], [0.25, 0.25, 0.25, 0.25]])  # both families sum to 0.5
    assert hierarchy.top_parents(tied, "family")[0].tolist() == [0, 0]
    read = read_hierarchy(synthetic_root, "test")
    back = Hierarchy.from_names(hierarchy_names(read))
    assert list(back) == list(read) == ["family", "manufacturer"]
    scores = np.random.default_rng(0).dirichlet(np.ones(len(read["family"].parent_of)), size=50)
    for level, (_, names) in read.items():
        assert names == sorted(names) and hierarchy_names(back) == hierarchy_names(read)
        assert [names[i] for i in read.top_parents(scores, level)[0]] == [
            back[level].names[i] for i in back.top_parents(scores, level)[0]]


def test_family_top1_by_summed_probability_can_beat_the_top_variant() -> None:
    # Family 0 = variants 0, 1; family 1 = variant 2. Both images are of variant 1 (family 0).
    scores = np.array([[0.30, 0.30, 0.40],    # top variant 2 (family 1), but family 0 sums to 0.60
                       [0.10, 0.60, 0.30]])   # right variant, right family either way
    report = summarize(scores, np.array([1, 1]), ["a1", "a2", "b"],
                               Hierarchy({"family": ParentLevel(np.array([0, 0, 1]), ["A", "B"])}))
    assert report["family_top1"] == 0.5 and report["family_top1_summed"] == 1.0


def test_predictor_gives_the_top_family_and_manufacturer_with_their_summed_probability() -> None:
    names = {"family": ["737", "737", "A320", "Spitfire"], "manufacturer": ["Boeing", "Boeing", "Airbus",
                                                                            "Supermarine"]}
    predictor = Predictor(torch.nn.Identity(), make_config("demo"), CLASSES, Runtime(torch.device("cpu")),
                          hierarchy=Hierarchy.from_names(names))
    probabilities = np.array([0.38, 0.22, 0.40, 0.0], dtype=np.float32)
    coarse = predictor.coarse(probabilities)
    assert predictor.top(probabilities, 1)[0]["class"] == "A320"  # the likeliest variant is not of the likeliest family
    assert coarse == {"family": {"name": "737", "probability": pytest.approx(0.60)},
                      "manufacturer": {"name": "Boeing", "probability": pytest.approx(0.60)}}
    assert format_coarse(coarse) == "  family 737 60.00%, manufacturer Boeing 60.00%"
    assert coarse_cells(coarse) == ["737", "0.600000", "Boeing", "0.600000"]
    bare = Predictor(torch.nn.Identity(), make_config("demo"), CLASSES, Runtime(torch.device("cpu")))
    assert bare.coarse(probabilities) == {} and format_coarse({}) == "" and coarse_cells({}) == [""] * 4


def as_imagefolder(fgvc_root: Path, out: Path, splits: tuple[str, ...] = ("trainval", "test")) -> Path:
    """FGVC-style synthetic data copied into ``out/<split>/<class>/`` ("/" in a class name becomes "-"), with
    ``out/hierarchy.csv`` from its annotation files (families and manufacturers); ``out``."""
    folder = {name: name.replace("/", "-") for split in splits for _, name in read_labels(fgvc_root, split, "variant")}
    for split in splits:
        for image_id, name in read_labels(fgvc_root, split, "variant"):
            (out / split / folder[name]).mkdir(parents=True, exist_ok=True)
            shutil.copy(image_path(fgvc_root, image_id), out / split / folder[name])
    classes = (fgvc_root / "fgvc-aircraft-2013b" / "data" / "variants.txt").read_text().splitlines()
    parents = hierarchy_names(read_hierarchy(fgvc_root, splits[0]))
    with (out / HIERARCHY_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "family", "manufacturer"])
        writer.writerows([folder[name], parents["family"][i], parents["manufacturer"][i]]
                         for i, name in enumerate(classes))
    return out


def test_an_imagefolder_with_hierarchy_csv_has_the_hierarchy_of_its_fgvc_original(tiny_root: Path,
                                                                                  tmp_path: Path) -> None:
    own = as_imagefolder(tiny_root, tmp_path / "own")
    cfg = make_config("demo", dataset="imagefolder", data_root=str(own))
    original = hierarchy_names(dataset_hierarchy(make_config("demo", data_root=str(tiny_root)), "test"))
    order = [name.replace("/", "-") for name in (tiny_root / "fgvc-aircraft-2013b" / "data" / "variants.txt")
             .read_text().splitlines()]
    names = hierarchy_names(dataset_hierarchy(cfg, "test"))
    for level in ("family", "manufacturer"):
        assert [names[level][sorted(order).index(c)] for c in order] == original[level]
    assert check_data(own, "imagefolder")[1] == []
    lines = (own / HIERARCHY_FILE).read_text().splitlines()
    write(own / HIERARCHY_FILE, "\n".join([*lines, lines[1].rsplit(",", 1)[0] + ",Another Maker"]))
    problems = check_data(own, "imagefolder")[1]
    assert problems == [f"{own / HIERARCHY_FILE} line {len(lines) + 1}: class {lines[1].split(',')[0]!r} is already on "
                        f"line 2: expected one line per class, a class has one parent per level"]
    with pytest.raises(DatasetError, match=re.escape(problems[0])):
        dataset_hierarchy(cfg, "test")
    (own / HIERARCHY_FILE).unlink()
    assert dataset_hierarchy(cfg, "test") is None


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["fgvc-aircraft", "imagefolder"])
def test_train_evaluate_predict_roll_up_families_and_manufacturers(dataset: str, tiny_root: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_root if dataset == "fgvc-aircraft" else as_imagefolder(tiny_root, tmp_path / "own")
    run = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--dataset", dataset, "--data-root", str(data), "--train-split",
                 "trainval", "--eval-split", "test", "--epochs", "1", "--img-size", "64", "--batch-size", "4",
                 "--workers", "0", "--arch", "efficientnet-b0", "--no-pretrained", "--run-dir", str(run),
                 "--no-progress"]) == 0
    trained = load_trained(run / "last.pt")
    assert set(trained.hierarchy) == {"family", "manufacturer"}
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "test"]) == 0
    summary = capsys.readouterr().out
    report = json.loads((run / "eval-test" / "metrics.json").read_text())
    for level in ("family", "manufacturer"):
        assert report[f"{level}_top1"] >= report["top1"] and 0 <= report[f"{level}_top1_summed"] <= 1
        assert f"{level} top-1" in summary and f"{100 * report[f'{level}_top1_summed']:.2f}% by summed" in summary
    with (run / "eval-test" / "predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for level in ("family", "manufacturer"):
        parent = dict(zip(trained.classes, trained.hierarchy[level], strict=True))
        assert report[f"{level}_top1"] == pytest.approx(np.mean([parent[r["predicted"]] == parent[r["true"]]
                                                                 for r in rows]))
        assert report[f"{level}_top1_summed"] == pytest.approx(np.mean([r[f"top_{level}"] == parent[r["true"]]
                                                                        for r in rows]))
        assert all(float(r[f"top_{level}_probability"]) >= float(r["probability"]) - 1e-6 for r in rows)

    photos = sorted(p for p in data.rglob("*.jpg"))[:2]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), *map(str, photos), "--topk", "3", "--json"]) == 0
    for result in json.loads(capsys.readouterr().out):
        probabilities = {g["class"]: g["probability"] for g in result["top"]}  # all 3 classes: the top 3
        for level, best in result["coarse"].items():
            members = [c for c, parent in zip(trained.classes, trained.hierarchy[level], strict=True)
                       if parent == best["name"]]
            assert best["probability"] == pytest.approx(sum(probabilities[c] for c in members), abs=1e-6)
            assert best["probability"] >= max(probabilities[c] for c in members)
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(photos[0]), "--topk", "2", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len({(r["top_family"], r["top_family_probability"]) for r in rows}) == 1 and rows[0]["top_manufacturer"]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(photos[0])]) == 0
    assert re.search(r"family .+ \d+\.\d\d%, manufacturer .+ \d+\.\d\d%", capsys.readouterr().out)

    from fgvc.apps.serve import describe

    shown = describe(Predictor.from_checkpoint(run / "last.pt"), photos[0])
    assert shown.text.splitlines()[-1].startswith("  family ")
