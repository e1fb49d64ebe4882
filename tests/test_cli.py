"""The command line end to end: synth -> train -> evaluate -> predict, and its error messages."""

from __future__ import annotations

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

    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--split", "test"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and 0 <= report["top1"] <= 1 and report["num_samples"] > 0
    assert json.loads((run / "eval-test.json").read_text())["top1"] == report["top1"]

    images = sorted((data / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[:2]
    assert main(["predict", "--checkpoint", str(run / "last.pt"), *map(str, images), "--topk", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    classes = (data / FGVC_FOLDER / "data" / "variants.txt").read_text().splitlines()
    assert [r["file"] for r in results] == list(map(str, images))
    for result in results:
        assert len(result["top"]) == 3 and {g["class"] for g in result["top"]} <= set(classes)
        probabilities = [g["probability"] for g in result["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6

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
