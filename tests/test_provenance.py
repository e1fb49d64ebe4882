"""What produced a run: data fingerprints, the code and machine facts, provenance.json and the checkpoint's copy,
epochs.csv's wall_s across a resume, and what an evaluation records for `fgvc compare`."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

import fgvc
from fgvc.data import build_dataset, build_imagefolder
from fgvc.evaluation.compare import compare
from fgvc.evaluation.evaluate import evaluate_checkpoint
from fgvc.models.checkpoint import PROVENANCE_KEY, load_checkpoint, load_trained, save_checkpoint
from fgvc.runs import provenance
from fgvc.runs.csvlog import EPOCH_FIELDS, keep_epochs_up_to, read_rows

ANNOTATIONS = Path("fgvc-aircraft-2013b") / "data"


def fgvc_fingerprint(root: Path, split: str = "trainval") -> dict:
    dataset = build_dataset(root, split)
    return provenance.split_fingerprint(dataset, dataset.classes, root, split)


def folder_fingerprint(root: Path) -> dict:
    dataset = build_imagefolder(root, "train")
    return provenance.split_fingerprint(dataset, dataset.classes, root, "train")


# --- data fingerprints -----------------------------------------------------------------------


def test_the_same_data_anywhere_shares_a_fingerprint_and_one_relabelled_image_changes_it(
        tiny_root: Path, tmp_path: Path) -> None:
    first = fgvc_fingerprint(tiny_root)
    assert first == fgvc_fingerprint(tiny_root)  # built twice: the same
    assert (first["split"], first["images"], first["classes"]) == ("trainval", 12, 3)
    assert re.fullmatch(r"[0-9a-f]{64}", first["sha256"])
    moved = tmp_path / "elsewhere" / "aircraft"
    shutil.copytree(tiny_root, moved)
    assert fgvc_fingerprint(moved) == first  # relative paths: the dataset's location does not count
    assert fgvc_fingerprint(moved, "test")["sha256"] != first["sha256"]  # another split, other images

    annotations = moved / ANNOTATIONS / "images_variant_trainval.txt"
    lines = annotations.read_text().splitlines()
    image_id, variant = lines[0].split(" ", 1)
    other = next(line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[1] != variant)
    annotations.write_text("\n".join([f"{image_id} {other}", *lines[1:]]) + "\n")  # one image, another class
    relabelled = fgvc_fingerprint(moved)
    assert (relabelled["images"], relabelled["classes"]) == (12, 3)
    assert relabelled["sha256"] != first["sha256"]


def test_an_image_folder_fingerprint_follows_its_labels_not_its_location(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for name in ("Spitfire", "Zero"):
        (root / "train" / name).mkdir(parents=True)
        for i in range(3):
            (root / "train" / name / f"{i}.jpg").write_bytes(b"")  # listing the folder decodes nothing
    first = folder_fingerprint(root)
    assert (first["images"], first["classes"]) == (6, 2)
    assert folder_fingerprint(root.rename(tmp_path / "moved")) == first
    root = tmp_path / "moved"
    (root / "train" / "Spitfire" / "0.jpg").rename(root / "train" / "Zero" / "spitfire-0.jpg")
    assert folder_fingerprint(root)["sha256"] != first["sha256"]


def test_the_fingerprint_hashes_sorted_relative_paths_with_class_names(tmp_path: Path) -> None:
    files, labels = [str(tmp_path / "b" / "2.jpg"), str(tmp_path / "a" / "1.jpg")], ["B/747", "A 320"]
    expected = hashlib.sha256(json.dumps([["a/1.jpg", "A 320"], ["b/2.jpg", "B/747"]]).encode())
    assert provenance.fingerprint(tmp_path, files, labels) == {"images": 2, "classes": 2,
                                                                "sha256": expected.hexdigest()}
    assert provenance.fingerprint(tmp_path, files[::-1], labels[::-1]) == provenance.fingerprint(tmp_path, files,
                                                                                                 labels)
    assert provenance.fingerprint(tmp_path, files, labels[::-1])["sha256"] != expected.hexdigest()


# --- code, libraries, machine -----------------------------------------------------------------


def test_code_version_is_none_outside_a_checkout_or_without_git(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = {"commit": None, "dirty": None, "diff_sha256": None}
    assert provenance.code_version(tmp_path) == unknown  # not a git checkout: no error
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert provenance.code_version() == unknown


def test_code_version_names_this_checkout(tmp_path: Path) -> None:
    package = Path(provenance.__file__).parent
    head = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the fgvc package is not in a git checkout here")
    version = provenance.code_version()
    assert version["commit"] == head.stdout.strip()
    status = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, check=True).stdout
    assert version["dirty"] is bool(status.strip())
    assert (version["diff_sha256"] is None) is (not version["dirty"])


def test_library_versions_and_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "LIBRARIES", ("torch", "no-such-library-fgvc"))
    assert provenance.library_versions() == {"fgvc": fgvc.__version__, "torch": importlib.metadata.version("torch"),
                                             "no-such-library-fgvc": None}
    facts = provenance.machine()
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["cores"] >= 1 and facts["gpu_count"] == len(facts["gpus"]) == torch.cuda.device_count()


# --- a run, stopped and resumed ----------------------------------------------------------------


@pytest.fixture(scope="module")
def resumed_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A 3-epoch run on the tiny dataset, stopped after epoch 2 and resumed 2 s later: its folder, its
    provenance.json after the first session, and its checkpoint of epoch 2."""
    from fgvc.training.engine import fit

    run = tmp_path_factory.mktemp("runs") / "resumed"
    fit(tiny_config(tiny_root, run, epochs=3, img_size=32, batch_size=6, tensorboard=False), progress=False,
        stop_after=2)
    first_session, epoch_2 = json.loads((run / "provenance.json").read_text()), load_checkpoint(run / "last.pt")
    time.sleep(2)  # between the sessions: no run's time
    fit(resume=run / "last.pt", progress=False)
    return run, first_session, epoch_2


def test_provenance_json_and_the_checkpoint_say_what_produced_the_run(resumed_run: tuple[Path, dict, dict],
                                                                      tiny_root: Path) -> None:
    run, first_session, epoch_2 = resumed_run
    record = json.loads((run / "provenance.json").read_text())
    data = {"train": fgvc_fingerprint(tiny_root, "trainval"), "eval": fgvc_fingerprint(tiny_root, "test")}
    assert len(record["sessions"]) == 2
    for session in record["sessions"]:
        assert session["argv"] == sys.argv and session["data"] == data
        assert session["code"] == provenance.code_version() and session["versions"] == provenance.library_versions()
        assert session["machine"] == provenance.machine()
        start, end = (datetime.fromisoformat(session[key]) for key in ("start", "end"))
        assert 0 <= (end - start).total_seconds() <= session["wall_s"] + 1  # times to the second
    first, second = record["sessions"]
    assert (datetime.fromisoformat(second["start"]) - datetime.fromisoformat(first["end"])).total_seconds() >= 1
    assert record["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"])
    assert first_session == {"sessions": [first], "wall_s": first["wall_s"]}  # as the first session left it
    # Each checkpoint holds the record as it stood at its epoch: the session writing it has not ended yet.
    assert epoch_2[PROVENANCE_KEY]["sessions"][0] == {**first, "end": None, "wall_s": pytest.approx(
        epoch_2[PROVENANCE_KEY]["sessions"][0]["wall_s"])}
    assert epoch_2[PROVENANCE_KEY]["sessions"][0]["wall_s"] <= first["wall_s"]
    last = load_checkpoint(run / "last.pt")[PROVENANCE_KEY]
    assert last["sessions"][0] == first and last["sessions"][1]["end"] is None
    assert last["sessions"][1]["start"] == second["start"] and last["sessions"][1]["wall_s"] < second["wall_s"]


def test_wall_s_grows_every_epoch_and_a_resume_continues_it(resumed_run: tuple[Path, dict, dict]) -> None:
    run, _, epoch_2 = resumed_run
    rows = read_rows(run / "epochs.csv")
    wall, seconds = [row["wall_s"] for row in rows], [row["seconds"] for row in rows]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert wall[0] > seconds[0]  # from the start of fit: data checks and model build count
    assert wall[1] - wall[0] >= seconds[1]
    assert epoch_2["metrics"]["wall_s"] == pytest.approx(wall[1])  # where the resume continues from
    second_session = json.loads((run / "provenance.json").read_text())["sessions"][1]
    # Epoch 3 adds the resumed session's time up to its end, not the 2 s between the sessions.
    assert seconds[2] <= wall[2] - wall[1] <= second_session["wall_s"]


def test_evaluations_record_the_data_and_the_code_and_compare_checks_them(
        resumed_run: tuple[Path, dict, dict], tmp_path: Path) -> None:
    run = resumed_run[0]
    session = json.loads((run / "provenance.json").read_text())["sessions"][-1]
    facts = {"data": session["data"]["eval"],
             "trained_with": {"code": [session["code"]], "train_data": [session["data"]["train"]]}}
    for folder in (run / "eval-test", tmp_path / "again"):
        if not folder.exists():
            evaluate_checkpoint(run / "last.pt", "test", device="cpu", out=folder)
        report = json.loads((folder / "metrics.json").read_text())
        assert {key: report[key] for key in facts} == facts, folder
    assert compare(run, tmp_path / "again")["warnings"] == []

    older = load_checkpoint(run / "last.pt")  # a checkpoint of an older fgvc: no record
    del older[PROVENANCE_KEY]
    (tmp_path / "older").mkdir()
    save_checkpoint(tmp_path / "older" / "last.pt", older)
    assert load_trained(tmp_path / "older" / "last.pt").classes == older["classes"]
    evaluate_checkpoint(tmp_path / "older" / "last.pt", "test", device="cpu")
    report = json.loads((tmp_path / "older" / "eval-test" / "metrics.json").read_text())
    assert report["data"] == facts["data"] and report["trained_with"] is None
    assert compare(run, tmp_path / "older" / "eval-test")["warnings"] == [
        "cannot check that A and B were trained on the same data by the same code: B's checkpoint has no record "
        "of them (an older run or an ONNX model)"]


# --- older files --------------------------------------------------------------------------------


def test_an_older_epochs_csv_keeps_its_rows_with_wall_s_unknown(tmp_path: Path) -> None:
    path = tmp_path / "epochs.csv"
    old_fields = EPOCH_FIELDS[:-1]
    assert EPOCH_FIELDS[-1] == "wall_s"
    path.write_text(",".join(old_fields) + "\n" + "\n".join(
        ",".join(str(epoch if name == "epoch" else 0.5) for name in old_fields) for epoch in (1, 2)) + "\n")
    keep_epochs_up_to(path, 1, EPOCH_FIELDS)  # what a resume of an older run after epoch 1 does
    (row,) = read_rows(path)
    assert row["epoch"] == 1 and row["train_loss"] == 0.5 and math.isnan(row["wall_s"])
    assert set(row) == set(EPOCH_FIELDS)
    assert provenance.resumed_wall_s(None) == 0.0 and math.isnan(provenance.resumed_wall_s({"metrics": {}}))
