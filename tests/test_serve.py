"""The web demo: what ``describe`` shows is what ``fgvc predict`` prints, bad uploads get the command line's
message, per-channel CAMs run batched within a measured time budget, one photo is worked on at a time behind a
bounded queue, uploads over the limit are refused, and in a real headless Chromium the page shows all of it and
keeps serving after a bad or oversized file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import PRINTED, agree, ranked, read_printout
from PIL import Image
from readme_checks import documented_commands
from torch import nn

from fgvc.apps import serve
from fgvc.apps.cli import build_parser, main
from fgvc.apps.serve import BANNER_NOTE, TOP_CLASS, CamBudget, Shown, build_app, describe, label, launch
from fgvc.core.defaults import PER_CHANNEL_METHODS
from fgvc.data import FGVC_FOLDER
from fgvc.models.backbones import cam_target_layer
from fgvc.models.gradcam import CAM_BATCH, compute_cam
from fgvc.models.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
UPLOAD_MB, CAM_BUDGET = 1, 0.001  # the browser test's server: the example photos fit; no per-channel CAM does
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 60  # the longest any step of the page may take
START_S = 240  # the longest the server may take to start (imports torch and gradio on a busy machine)


def write_bad_files(folder: Path) -> list[Path]:
    """One file of each kind the loader refuses: empty, not an image, truncated, a decompression bomb."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo\n")
    good = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    good.save(folder / "whole.jpg", quality=90)
    (folder / "truncated.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:1500])
    (folder / "whole.jpg").unlink()
    Image.new("1", (14000, 14000)).save(folder / "bomb.png")  # 196 M pixels: over twice PIL's limit, 24 kB on disk
    return [folder / name for name in ("empty.jpg", "notes.jpg", "truncated.jpg", "bomb.png")]


def cli_predict(checkpoint: Path, files: list[Path], crop_banner: bool, capsys: pytest.CaptureFixture[str],
                text: bool = False) -> tuple[list, str]:
    """``fgvc predict --json`` (or its text output) of ``files`` given by name from their folder, and its stderr."""
    before = Path.cwd()
    os.chdir(files[0].parent)
    try:
        capsys.readouterr()
        main(["predict", "--checkpoint", str(checkpoint), *(f.name for f in files), "--device", "cpu",
              *([] if text else ["--json"]), "--crop-banner" if crop_banner else "--no-crop-banner"])
        captured = capsys.readouterr()
    finally:
        os.chdir(before)
    return (captured.out if text else json.loads(captured.out)), captured.err


@pytest.fixture(scope="module")
def served_checkpoint(request: pytest.FixtureRequest) -> Path:
    """The tiny trained run's checkpoint, or the one FGVC_SERVE_CHECKPOINT names (for the docs' screenshot)."""
    if os.environ.get("FGVC_SERVE_CHECKPOINT"):
        return Path(os.environ["FGVC_SERVE_CHECKPOINT"]).resolve()
    return request.getfixturevalue("short_run") / "last.pt"


@pytest.fixture(scope="module")
def predictor(served_checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(served_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def photos(synthetic_root: Path) -> list[Path]:
    return sorted((synthetic_root / FGVC_FOLDER / "data" / "images").glob("*.jpg"))[::97][:4]


@pytest.mark.parametrize("crop_banner", [False, True])
def test_the_page_shows_what_fgvc_predict_prints(predictor: Predictor, served_checkpoint: Path, photos: list[Path],
                                                 crop_banner: bool, capsys: pytest.CaptureFixture[str]) -> None:
    expected, _ = cli_predict(served_checkpoint, photos, crop_banner, capsys)
    printed, _ = cli_predict(served_checkpoint, photos, crop_banner, capsys, text=True)
    shown = [describe(predictor, photo, crop_banner) for photo in photos]  # one photo at a time: the CLI batches
    page_text = "\n".join(s.text for s in shown) + "\n"
    assert agree(read_printout(page_text), read_printout(printed), slack=PRINTED)  # the lines of the command line
    assert sum(len(p) for _, p in read_printout(printed)) >= 5 * len(photos)  # every guess's percentage read
    for result, page in zip(expected, shown, strict=True):
        assert agree(ranked(page.confidences), ranked({label(guess): guess["probability"] for guess in result["top"]}))
        top = result["top"][0]
        assert label(top) == f"{top['class']} ({top['family']} / {top['manufacturer']})"  # the hierarchy is shown
        note = "" if crop_banner else f"; {BANNER_NOTE}"  # the photos are named as FGVC-Aircraft's
        assert page.message == f"{Path(result['file']).name}: gradcam for {top['class']} (the top class){note}"
        assert page.overlay is not None and page.overlay.shape == page.photo.shape
    height = Image.open(photos[0]).height
    assert shown[0].photo.shape[0] == height - (predictor.cfg.banner_px if crop_banner else 0)


def test_the_explain_menu_and_the_cam_method_change_the_map(predictor: Predictor, photos: list[Path]) -> None:
    top = describe(predictor, photos[0])
    other = [*top.confidences][1].split(" (")[0]
    for_other = describe(predictor, photos[0], explain_class=other)
    by_eigencam = describe(predictor, photos[0], method="eigencam")
    assert for_other.message.endswith(f"gradcam for {other}") and by_eigencam.message.startswith(
        f"{photos[0].name}: eigencam for")
    assert for_other.confidences == top.confidences  # explaining another class changes no prediction
    assert np.abs(for_other.overlay.astype(int) - top.overlay).mean() > 1
    assert np.abs(by_eigencam.overlay.astype(int) - top.overlay).mean() > 1


def test_a_bad_upload_gets_the_message_of_the_command_line(predictor: Predictor, served_checkpoint: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_bad_files(tmp_path / "bad")
    _, stderr = cli_predict(served_checkpoint, bad, False, capsys)
    shown = [describe(predictor, path) for path in bad]
    assert [s.message for s in shown] == stderr.splitlines()
    assert [m.split(": ")[3] for m in stderr.splitlines()] == [
        "empty file (0 bytes)", "not an image (unknown format)", "damaged image",
        "refused as a possible decompression bomb"]
    assert all(s.confidences == {} and s.photo is None and s.overlay is None for s in shown)


def test_a_per_channel_cam_over_the_budget_is_refused_with_its_estimate(predictor: Predictor,
                                                                       photos: list[Path]) -> None:
    budget = CamBudget(1e-6)
    refused = describe(predictor, photos[0], method="scorecam", budget=budget)
    [cost] = budget.costs.values()
    assert cost.passes == cam_target_layer(predictor.model, predictor.cfg.arch).num_features
    assert refused.message.startswith(f"fgvc: error: {photos[0].name}: scorecam would take about "
                                      f"{cost.seconds:.0f} s here ({cost.passes} forward passes, {cost.batches} "
                                      f"batches of {CAM_BATCH} at ")
    assert "over the budget of 1e-06 s" in refused.message
    suggested = re.search(r"restart with (fgvc serve .*)$", refused.message)[1].split()[1:]
    assert build_parser().parse_args([*suggested, "--checkpoint", "x"]).cam_budget == math.ceil(cost.seconds)
    plain = describe(predictor, photos[0], method="gradcam", budget=budget)  # cheap methods have no budget
    assert plain.overlay is not None and plain.message.startswith(f"{photos[0].name}: gradcam for ")
    assert refused.overlay is None and refused.text == plain.text and refused.confidences == plain.confidences
    assert np.array_equal(refused.photo, plain.photo)  # the prediction is still shown


def test_the_cam_budget_measures_each_input_size_once(predictor: Predictor) -> None:
    """The ``whole`` view keeps each photo's shape, so a wide photo costs more than a square one."""
    wide, square = Image.new("RGB", (300, 100)), Image.new("RGB", (100, 100))
    for view, sizes in (("squash", 1), ("whole", 2)):
        budget, viewing = CamBudget(1e9), dataclasses.replace(predictor, view=view)
        first = budget.estimate(viewing, wide)
        assert budget.estimate(viewing, wide) is first  # measured once
        budget.estimate(viewing, square)
        assert len(budget.costs) == sizes, view


@pytest.mark.parametrize("method", PER_CHANNEL_METHODS)
def test_the_per_channel_methods_run_their_passes_in_batches(predictor: Predictor, photos: list[Path],
                                                             method: str) -> None:
    """On the stem's BatchNorm (32 channels, so that the test is quick): one batch of ``CAM_BATCH`` passes,
    where ScoreCAM alone would take two of 16."""
    layer = next(m for m in predictor.model.modules() if isinstance(m, nn.BatchNorm2d))
    assert layer.num_features == CAM_BATCH
    image = Image.open(photos[0]).convert("RGB")
    batches: list[int] = []
    handle = predictor.model.register_forward_hook(lambda _m, inputs, _o: batches.append(inputs[0].shape[0]))
    try:
        cam = compute_cam(predictor.model, predictor.cfg.arch, predictor.inputs(image), 0, method, layer)
    finally:
        handle.remove()
    assert cam.shape == predictor.inputs(image).shape[2:] and max(batches) == CAM_BATCH
    assert batches.count(CAM_BATCH) == 1


@pytest.mark.slow
def test_a_per_channel_cam_within_the_budget_runs(predictor: Predictor, photos: list[Path]) -> None:
    budget = CamBudget(1e9)
    shown = describe(predictor, photos[0], method="scorecam", budget=budget)
    assert shown.message.startswith(f"{photos[0].name}: scorecam for ") and shown.overlay is not None


@pytest.mark.parametrize(("flag", "value"), [("--max-upload-mb", "0"), ("--max-upload-mb", "inf"),
                                             ("--cam-budget", "0"), ("--cam-budget", "nan"), ("--queue-size", "0")])
def test_serve_refuses_a_limit_of_zero_or_no_limit(served_checkpoint: Path, flag: str, value: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--checkpoint", str(served_checkpoint), "--port", str(free_port()), flag, value]) == 2
    assert f"{flag} {value}: expected a finite number above 0" in capsys.readouterr().err


@pytest.mark.slow  # a web server and its clients
def test_one_photo_at_a_time_behind_a_bounded_queue(predictor: Predictor, photos: list[Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The first click works while the second waits; a third finds the queue (of 1) full; an upload over the
    limit is refused by the server itself (413), which goes on serving."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import QueueError, Status  # QueueError: what the page shows as "Queue is full"

    release, running, most = threading.Event(), [0], [0]

    def working(*_args: object) -> Shown:
        running[0] += 1
        most[0] = max(most[0], running[0])
        release.wait(WAIT_S)
        running[0] -= 1
        return Shown("done", {}, "", None, None)

    monkeypatch.setattr(serve, "describe", working)
    app = build_app(predictor, queue_size=1)
    port = free_port()
    launch(app, "127.0.0.1", port, max_upload_mb=1, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        big = tmp_path / "big.jpg"
        big.write_bytes(b"\xff" * (2**20 + 1))
        request = urllib.request.Request(f"{url}gradio_api/upload", method="POST", data=b"".join([
            b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.jpg\"\r\n\r\n",
            big.read_bytes(), b"\r\n--b--\r\n"]), headers={"Content-Type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT_S)
        assert refused.value.code == 413

        client = Client(url, verbose=False)
        args = (handle_file(str(photos[0])), False, "gradcam", TOP_CLASS, False)
        jobs = [client.submit(*args, api_name="/show")]
        wait_for(lambda: running[0] == 1, "the first click to start")
        jobs.append(client.submit(*args, api_name="/show"))
        wait_for(lambda: jobs[1].status().code == Status.IN_QUEUE, "the second click to wait in line")
        with pytest.raises(QueueError):
            client.submit(*args, api_name="/show").result(timeout=WAIT_S)
        release.set()
        assert [job.result(timeout=WAIT_S)[0] for job in jobs] == ['<p class="fgvc-error">done</p>'] * 2
        assert most[0] == 1
    finally:
        release.set()
        app.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"after {WAIT_S} s, still waiting for {what}"
        time.sleep(0.05)


def test_the_docs_show_the_demos_limits_with_their_defaults() -> None:
    limits = ("max_upload_mb", "cam_budget", "queue_size")
    flags = [f"--{limit.replace('_', '-')}" for limit in limits]
    [command] = [c for c in documented_commands() if c.startswith("fgvc serve ") and
                 "[" not in c and all(flag in c.split() for flag in flags)]
    shown = build_parser().parse_args(command.split()[1:])
    defaults = build_parser().parse_args(["serve", "--checkpoint", "x"])
    assert [getattr(shown, limit) for limit in limits] == [getattr(defaults, limit) for limit in limits]


def test_serve_refuses_a_busy_port_and_a_missing_example(served_checkpoint: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["serve", "--checkpoint", str(served_checkpoint), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(served_checkpoint), "--port", str(free_port()),
                 "--examples", str(tmp_path / "gone.jpg")]) == 2
    assert f"example image(s) not found: {tmp_path / 'gone.jpg'}" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(served_checkpoint: Path, photos: list[Path], tmp_path: Path) -> Iterator[str]:
    """``fgvc serve`` of ``served_checkpoint`` in a subprocess on a free port; its URL. Stopped whatever happens."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "fgvc", "serve", "--checkpoint", str(served_checkpoint),
                                    "--port", str(port), "--device", "cpu", "--examples", str(photos[1]),
                                    "--max-upload-mb", str(UPLOAD_MB), "--cam-budget", str(CAM_BUDGET)],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert process.poll() is None, f"fgvc serve exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"fgvc serve did not answer within {START_S} s:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def chromium() -> object:
    """Debian's Chromium, headless, driven by its chromedriver."""
    if not (CHROMIUM and CHROMEDRIVER):
        message = "the browser test needs Debian's chromium and chromium-driver: `make test` installs them (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1150"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.slow
def test_the_page_in_a_browser(server: str, served_checkpoint: Path, photos: list[Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    bad = write_bad_files(tmp_path / "bad")
    big = tmp_path / "big" / photos[2].name  # a photo, padded past the upload limit
    big.parent.mkdir()
    big.write_bytes(photos[2].read_bytes() + bytes(UPLOAD_MB * 2**20))
    driver = chromium()
    try:
        driver.get(server)
        wait = WebDriverWait(driver, WAIT_S)
        # every text the page announces, e.g. the status tracker's screen-reader line, kept for the end
        driver.execute_script("window.announced = []; new MutationObserver(() => document.querySelectorAll("
                              "'[role=status]').forEach(e => window.announced.push(e.textContent))).observe("
                              "document.body, {subtree: true, childList: true, characterData: true});")

        def find(css: str) -> object:
            return driver.find_element(By.CSS_SELECTOR, css)

        def message() -> str:
            return find("#message").text

        def until(condition: Callable[[], bool], what: str) -> None:
            try:
                wait.until(lambda _: condition())
            except TimeoutException:
                pytest.fail(f"after {WAIT_S} s the page still does not show {what}; it shows {message()!r} and "
                            f"{find('#predict-text textarea').get_attribute('value')!r}")

        def upload(path: Path) -> None:
            clear = driver.find_elements(By.CSS_SELECTOR, "#upload button[aria-label=Clear]")
            with contextlib.suppress(ElementClickInterceptedException):  # after a refused upload: under the drop zone
                if clear:
                    clear[0].click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
            find("#upload input[type=file]").send_keys(str(path))

        def shows_the_cli(photo: Path, crop_banner: bool) -> None:
            """The top 5 (names and rounded percentages) and the text are what fgvc predict says."""
            printed, _ = cli_predict(served_checkpoint, [photo], crop_banner, capsys, text=True)
            until(lambda: agree(read_printout(find("#predict-text textarea").get_attribute("value")),
                                read_printout(printed), slack=PRINTED), f"fgvc predict's lines {printed!r}")
            (result,), _ = cli_predict(served_checkpoint, [photo], crop_banner, capsys)
            names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#top dt")]
            percents = [int(e.text.removesuffix("%")) for e in driver.find_elements(By.CSS_SELECTOR, "#top dd")]
            expected = {label(guess): guess["probability"] for guess in result["top"]}
            assert agree(ranked(dict(zip(names, np.array(percents) / 100, strict=True))), ranked(expected),
                         slack=0.005)  # rounded to whole percents
            for image in ("#photo img", "#overlay img"):
                assert find(image).get_attribute("src").endswith(".png")
                assert driver.execute_script("return arguments[0].naturalWidth", find(image)) > 0

        upload(photos[0])
        shows_the_cli(photos[0], crop_banner=False)
        until(lambda: message() == f"{photos[0].name}: gradcam for {find('#top dt').text.split(' (')[0]} "
              f"(the top class); {BANNER_NOTE}", "the top class explained, and the banner's note")

        find("#crop-banner input").click()
        shows_the_cli(photos[0], crop_banner=True)

        driver.find_element(By.XPATH, "//*[@id='method']//label[.//span[text()='eigencam']]").click()
        until(lambda: message().startswith(f"{photos[0].name}: eigencam for "), "an eigencam map")
        second = driver.find_elements(By.CSS_SELECTOR, "#top dt")[1].text.split(" (")[0]
        menu = find("#explain-class input")
        menu.click()
        menu.send_keys(Keys.CONTROL, "a")
        menu.send_keys(second, Keys.ENTER)
        until(lambda: message() == f"{photos[0].name}: eigencam for {second}", f"the map of {second}")
        driver.find_element(By.XPATH, "//*[@id='method']//label[.//span[text()='scorecam']]").click()
        until(lambda: message().startswith(f"fgvc: error: {photos[0].name}: scorecam would take about ")
              and message().endswith(f"over the budget of {CAM_BUDGET:g} s: pick another method, or restart "
                                     f"with fgvc serve --cam-budget {message().split()[-1]}"), "scorecam refused")
        assert "fgvc-error" in find("#message p").get_attribute("class") and find("#top dt").text  # the top 5 stay
        driver.find_element(By.XPATH, "//*[@id='method']//label[.//span[text()='gradcam']]").click()
        menu.click()
        menu.send_keys(Keys.CONTROL, "a")
        menu.send_keys(TOP_CLASS, Keys.ENTER)
        until(lambda: message().endswith("(the top class)") and "gradcam" in message(), "the top class again")

        upload(big)  # Gradio's page refuses it before sending it, with a one-line message
        too_big = f'File(s) exceed the maximum allowed size of {UPLOAD_MB:.1f} Mb: "{big.name}"'
        until(lambda: driver.find_elements(By.XPATH, f"//*[contains(text(), '{too_big}')]"),
              f"the message {too_big!r}")
        assert message() == "" and not driver.find_elements(By.CSS_SELECTOR, "#top dt")  # nothing left from before
        upload(photos[2])
        shows_the_cli(photos[2], crop_banner=True)  # still serving

        _, stderr = cli_predict(served_checkpoint, bad, True, capsys)
        for path, line in zip(bad, stderr.splitlines(), strict=True):
            upload(path)
            until(lambda line=line: message() == line, f"the command line's message {line!r}")
            assert "fgvc-error" in find("#message p").get_attribute("class")
            assert not driver.find_elements(By.CSS_SELECTOR, "#top dt")  # no top 5 left from the photo before

        driver.find_element(By.CSS_SELECTOR, "#upload button[aria-label=Clear]").click()
        driver.find_element(By.CSS_SELECTOR, "button.gallery-item").click()  # the example: still serving
        shows_the_cli(photos[1], crop_banner=True)
        announced = driver.execute_script("return window.announced.concat([document.body.textContent])")
        assert not [text for text in announced if "common." in text]  # no untranslated Gradio key
        for close in driver.find_elements(By.CSS_SELECTOR, "button.toast-close"):
            close.click()  # the upload's message, closed as a person would (it would go by itself in a while)
        until(lambda: not driver.find_elements(By.XPATH, f"//*[contains(text(), '{too_big}')]"),
              "the upload's message to close")
    finally:
        screenshots = [tmp_path / "serve.png", *filter(None, [os.environ.get("FGVC_SERVE_SCREENSHOT")])]
        for path in screenshots:
            driver.save_screenshot(str(path))
        driver.quit()
    assert Image.open(screenshots[0]).size[0] >= 1000
