"""The command line end to end: synth -> train -> evaluate -> predict, and its error messages."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from fgvc.cli import build_parser, main
from fgvc.data import FGVC_FOLDER


def test_synth_train_evaluate_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["synth", "--out", str(data), "--classes", "4", "--per-class", "12", "--size", "96x88"]) == 0
    assert main(["train", "--preset", "demo", "--data-root", str(data), "--epochs", "1", "--img-size", "64",
                 "--batch-size", "8", "--workers", "0", "--run-dir", str(run), "--no-progress"]) == 0
    assert (run / "last.pt").exists()
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "val"]) == 0
    summary = capsys.readouterr().out
    report = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert report["split"] == "val" and 0 <= report["top1"] <= 1 and report["num_samples"] > 0
    assert f"{100 * report['top1']:6.2f}%" in summary and "most-confused pairs" in summary

    images = sorted((data / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:2]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), *map(str, images), "--topk", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    meta = data / FGVC_FOLDER / "data"
    classes = (meta / "variants.txt").read_text().splitlines()
    families = (meta / "families.txt").read_text().splitlines()
    assert [r["file"] for r in results] == list(map(str, images))
    for result in results:
        assert len(result["top"]) == 3 and {g["class"] for g in result["top"]} <= set(classes)
        assert {g["family"] for g in result["top"]} <= set(families)
        probabilities = [g["probability"] for g in result["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6

    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(folder), "--topk", "2", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 * len(images) and {r["rank"] for r in rows} == {"1", "2"}
    assert all(r["manufacturer"] for r in rows)

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    assert main(["predict", "--checkpoint", str(run / "last.pt"), str(not_image), str(images[0])]) == 1
    captured = capsys.readouterr()
    assert str(not_image) in captured.err and str(images[0]) in captured.out


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "demo", "--epochs", "0"]) == 2
    assert "epochs=0" in capsys.readouterr().err
    assert main(["train", "--preset", "demo", "--data-root", str(tmp_path), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "fgvc download" in err and "Traceback" not in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["synth", "download", "train", "evaluate", "predict"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0 and "usage: fgvc " + command in capsys.readouterr().out
