"""ONNX export: the file computes what the PyTorch model computes at any batch size, carries what inference
needs, and ``fgvc predict`` runs it through the same preprocessing and output; batching changes no prediction;
``fgvc bench predict`` runs. Exporting a backbone takes 15 s and more: the tests of exported files are in the slow
tier, and the fast tier reads back a small file made by hand with the same metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from helpers import LOGIT_TOLERANCE, PROBABILITY_TOLERANCE, Ranked, agree, ranked
from PIL import Image

from fgvc.apps.benchmarks.predict import write_checkpoint
from fgvc.apps.cli import main
from fgvc.apps.predict_output import predict_files
from fgvc.core.errors import CheckpointError, ConfigError
from fgvc.data import FGVC_FOLDER, load_image
from fgvc.models.backbones import model_spec
from fgvc.models.checkpoint import load_trained
from fgvc.models.export import INPUT, MIN_SIDE, OUTPUT, export_onnx, load_onnx, onnx_metadata
from fgvc.models.predictor import Predictor


@pytest.fixture(scope="module")
def photos(synthetic_root: Path) -> list[Path]:
    return sorted((synthetic_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[::97][:5]


class Exported(NamedTuple):
    checkpoint: Path
    onnx_file: Path
    traces: int  # the calls to torch.export.export that exporting made


@pytest.fixture(scope="module", params=[pytest.param("efficientnet-b0", marks=pytest.mark.slow), "efficientnet-lite0"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-class checkpoint at 64 px: B0 (efficientnet_pytorch, swish: its export-safe swish; the slow tier) with
    random weights, Lite0 (the fork, ReLU6) with its ImageNet backbone."""
    return write_checkpoint(tmp_path_factory.mktemp(request.param) / "last.pt", img_size=64, batch_size=4,
                            arch=request.param, classes=6)


@pytest.fixture(scope="module")
def exported(checkpoint: Path) -> Exported:
    """``checkpoint`` and its ONNX file (the tests that read it are slow: exporting takes 15 s and more)."""
    traces, trace = [], torch.export.export
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.export, "export", lambda *args, **kwargs: traces.append(args) or trace(*args, **kwargs))
        onnx_file = export_onnx(checkpoint, checkpoint.parent / "model.onnx")
    return Exported(checkpoint, onnx_file, len(traces))


WEIGHTS = 4 * np.eye(3, 6, dtype=np.float32)  # the hand-made file's: the mean of channel c is the logit of class c


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Lite0 checkpoint and an ONNX file made by hand for it: the metadata ``export_onnx`` attaches (the same
    ``onnx_metadata``) on a graph that averages each channel of the images and maps the three means to the 6
    classes' logits through ``WEIGHTS``, with a dynamic batch, height and width."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    checkpoint = write_checkpoint(tmp_path_factory.mktemp("hand-made") / "last.pt", img_size=64, batch_size=4,
                                  arch="efficientnet-lite0", classes=6)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", [INPUT], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["means"]),
         helper.make_node("MatMul", ["means", "weights"], [OUTPUT])], "hand-made",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 6])],
        [numpy_helper.from_array(WEIGHTS, "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, onnx_metadata(load_trained(checkpoint)))
    onnx.save(model, checkpoint.parent / "model.onnx")
    return checkpoint, checkpoint.parent / "model.onnx"


@pytest.mark.slow  # exporting takes 15 s and more
def test_onnx_computes_the_pytorch_logits_at_batch_1_and_3(exported: Exported, photos: list[Path]) -> None:
    checkpoint, onnx_file, _ = exported
    torch_model, onnx_model = load_trained(checkpoint).model, load_onnx(onnx_file).model
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    images = torch.stack([predictor.transform(load_image(p, 20)) for p in photos[:3]])
    for batch in (images[:1], images):
        with torch.no_grad():
            expected = torch_model(batch)
        got = onnx_model(batch)
        scale = float(expected.abs().max())
        assert got.shape == expected.shape == (len(batch), len(predictor.classes))
        assert (got - expected).abs().max() <= LOGIT_TOLERANCE * max(scale, 1.0)
        assert (got.softmax(1) - expected.softmax(1)).abs().max() <= PROBABILITY_TOLERANCE
    assert float(expected.std()) > 0.01 * scale > 0  # logits that differ between classes and images


@pytest.mark.slow  # exporting takes 15 s and more
def test_one_trace_gives_a_dynamic_batch_height_and_width(exported: Exported) -> None:
    """The sizes are declared as the backbone takes them (each side at least ``MIN_SIDE``): unbounded, the exporter
    traces the model, fails, and traces it again with that bound."""
    assert exported.traces == 1
    torch_model, onnx_model = load_trained(exported.checkpoint).model, load_onnx(exported.onnx_file).model
    assert [images.shape for images in onnx_model.session.get_inputs()] == [["batch", 3, "height", "width"]]
    torch.manual_seed(0)
    for height, width in ((MIN_SIDE, MIN_SIDE), (MIN_SIDE + 1, 3 * MIN_SIDE - 1)):
        batch = torch.randn(2, 3, height, width)
        with torch.no_grad():
            expected = torch_model(batch)
        assert (onnx_model(batch) - expected).abs().max() <= LOGIT_TOLERANCE * max(float(expected.abs().max()), 1.0)


def carries_what_inference_needs(checkpoint: Path, onnx_file: Path) -> None:
    """The ONNX file read back gives the checkpoint's config, classes and hierarchy, and the preprocessing."""
    trained, loaded = load_trained(checkpoint), load_onnx(onnx_file)
    assert loaded.cfg == trained.cfg and loaded.classes == trained.classes
    assert loaded.hierarchy == trained.hierarchy and set(loaded.hierarchy) == {"family", "manufacturer"}
    metadata, norm = loaded.model.metadata, model_spec(trained.cfg.arch).norm
    assert int(metadata["img_size"]) == trained.cfg.eval_size and metadata["eval_view"] == trained.cfg.eval_view
    assert tuple(json.loads(metadata["mean"])) == norm.mean and tuple(json.loads(metadata["std"])) == norm.std
    assert metadata["interpolation"] == norm.interpolation.value


@pytest.mark.slow  # exporting takes 15 s and more
def test_the_file_carries_what_inference_needs(exported: Exported) -> None:
    carries_what_inference_needs(exported.checkpoint, exported.onnx_file)


def test_a_file_with_the_metadata_reads_back_as_its_checkpoint_and_runs(hand_made: tuple[Path, Path]) -> None:
    carries_what_inference_needs(*hand_made)
    predictor = Predictor.from_checkpoint(hand_made[1], batch_size=2)
    photos = [Image.new("RGB", (50, 40 + 7 * i), colour) for i, colour in enumerate(("red", "lime", "blue"))]
    means = torch.stack([predictor.transform(photo) for photo in photos]).mean(dim=(2, 3))
    expected = (means @ torch.from_numpy(WEIGHTS)).softmax(dim=1).numpy()
    assert expected.argmax(axis=1).tolist() == [0, 1, 2]  # each photo's own colour wins
    assert np.abs(predictor.scores(photos) - expected).max() <= PROBABILITY_TOLERANCE


def top5(result: dict) -> Ranked:
    """A result of ``fgvc predict --json``: each guess's class with its family and manufacturer, and probability."""
    return ranked({f"{g['class']} ({g['family']} / {g['manufacturer']})": g["probability"] for g in result["top"]})


@pytest.mark.slow  # exporting takes 15 s and more
def test_predict_on_the_onnx_file_names_the_top5_of_the_checkpoint(
        exported: Exported, photos: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {}
    for checkpoint in (exported.checkpoint, exported.onnx_file):
        capsys.readouterr()
        assert main(["predict", "--checkpoint", str(checkpoint), *map(str, photos), "--json", "--crop-banner",
                     "--batch-size", "2"]) == 0
        outputs[checkpoint.suffix] = json.loads(capsys.readouterr().out)
    assert len(outputs[".pt"]) == len(photos)
    for torch_result, onnx_result in zip(outputs[".pt"], outputs[".onnx"], strict=True):
        assert onnx_result["file"] == torch_result["file"]
        assert agree(top5(onnx_result), top5(torch_result))


def test_batched_predict_equals_one_image_at_a_time(checkpoint: Path, photos: list[Path]) -> None:
    batched = Predictor.from_checkpoint(checkpoint, device="cpu", batch_size=4)
    single = Predictor.from_checkpoint(checkpoint, device="cpu", batch_size=1)
    together = predict_files(batched, photos, crop_banner=True)
    apart = [result for photo in photos for result in predict_files(single, [photo], crop_banner=True)]
    assert [r["file"] for r in together] == [r["file"] for r in apart] == list(map(str, photos))
    for one, other in zip(together, apart, strict=True):
        assert agree(top5(one), top5(other))


def test_onnx_files_are_checked(hand_made: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.onnx"):
        Predictor.from_checkpoint(tmp_path / "missing.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(CheckpointError, match=r"text\.onnx"):
        Predictor.from_checkpoint(tmp_path / "text.onnx")
    with pytest.raises(ConfigError, match="ONNX Runtime"):
        Predictor.from_checkpoint(hand_made[1], precision="bf16")


@pytest.mark.slow  # every inference configuration timed: fgvc.apps.benchmarks' fast tests are test_bench.py's
def test_bench_predict_prints_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "predict", "--quick", "--repeats", "1", "--device", "cpu", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### fgvc bench predict: efficientnet-lite0") and "| configuration | images/s |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| one image at a time, fp32 eager (baseline) |") and "| 1.00x |" in rows[0]
    assert any(row.startswith("| ONNX Runtime, batches of 2 |") for row in rows)
    assert all("one image:" in row and " ms |" in row for row in rows)
