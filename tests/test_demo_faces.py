"""The demo on faces, in a real headless Chromium against the real `serve` command over HTTP: a tiny face
model trained here on CelebA's first 1,000 faces (its 40 attribute directions from `python -m glow_tf
direction`), driven with a real photo (NASA's public-domain portrait of Eileen Collins, eyes labelled by
hand: tests/fixtures/faces/): upload, alignment (her labelled eyes must land on the original's places),
reconstruction, a slider moving the face in the direction's sense, blend, temperature sampling, a photo
without a face; and `serve --graph` on the fixture graph (tests/fixtures/original_graph) in the browser.

The CelebA sample is read from $GLOW_CELEBA_SAMPLE or shared/data/celeba_sample beside the repository
(skipped without it, a failure under CI=true), as tests/test_celeba.py does.
"""
import base64
import io
import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

import glow_tf
from glow_tf.demo import align
from glow_tf.demo.app import data_url
from glow_tf.demo.startup import FACE_ORDER
from celeba_sample import celeba_sample_dir
import demo_client
from demo_client import browser, call, draw, ok, set_range, settled, version, wait  # noqa: F401 (browser: a fixture)

ROOT = pathlib.Path(__file__).resolve().parent.parent
FACES = ROOT / "tests" / "fixtures" / "faces"
PHOTO = FACES / "astronaut.jpg"
GRAPH = ROOT / "tests" / "fixtures" / "original_graph" / "graph.pb"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
# a 3-level, 1-step, width-8 affine Glow at 64 px and 5 bits, 8 steps of 16 faces: seconds on 2 cores
FACE_RUN_FLAGS = ["--problem", "celeba", "--image_size", "64", "--n_levels", "3", "--depth", "1", "--width", "8",
                  "--flow_coupling", "1", "--learntop", "--n_bits_x", "5", "--n_train", "128", "--n_batch_train", "16",
                  "--n_batch_init", "16", "--n_batch_test", "50", "--anchor_size", "64", "--epochs", "2",
                  "--epochs_full_valid", "2", "--epochs_full_sample", "100", "--n_test", "100",
                  "--gradient_checkpointing", "0", "--seed", "0"]


def human_eyes():
    labels = json.loads((FACES / "astronaut_eyes.json").read_text())
    return tuple(labels["left_eye"]), tuple(labels["right_eye"])


def photo():
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def pixels(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def serving(argv, log_path):
    """The base URL of `python -m glow_tf serve ARGV` on a free port, stopped on leaving."""
    return demo_client.serving(argv, log_path, ROOT, ENV)


# --- the face run, its server, and the same model here --------------------------------------------------
@pytest.fixture(scope="module")
def face_run(tmp_path_factory):
    """(run folder, CelebA sample folder): train.py --problem celeba on the sample, then its 40 directions
    (`direction`, the train split, bin-centre noise) as an .npz."""
    import train  # noqa: PLC0415
    from glow_tf.__main__ import main  # noqa: PLC0415

    sample = celeba_sample_dir()
    logdir = tmp_path_factory.mktemp("faces") / "run"
    train.main([*FACE_RUN_FLAGS, "--data_dir", sample, "--logdir", str(logdir)])
    assert main(["direction", "--logdir", str(logdir), "--noise", "centre", "--batch_size", "100", "--quiet",
                 "--out", str(logdir / "directions.npz")]) == 0
    return logdir, sample


@pytest.fixture(scope="module")
def server(face_run, tmp_path_factory):
    logdir, _ = face_run
    with serving(["--logdir", logdir, "--directions", logdir / "directions.npz"],
                 tmp_path_factory.mktemp("face_server") / "serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def glow(face_run):
    import tensorflow as tf  # noqa: PLC0415

    with tf.device("/CPU:0"):
        return glow_tf.load_run(str(face_run[0]))[0]


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811 (the browser fixture of demo_client)
    browser.get(server + "/")
    wait(browser, "document.body.dataset.ready === '1'")
    return browser


def upload_in_page(page, path, element="upload"):
    """Chooses `path` in the file input (emptied first, so that choosing the same file again is a change)."""
    page.execute_script("document.getElementById(arguments[0]).value = ''", element)
    v = version(page)
    page.find_element("id", element).send_keys(str(path))
    if element == "upload":
        return settled(page, v)
    wait(page, "document.body.dataset.pending === '0'")
    return None


# --- what the page offers --------------------------------------------------------------------------------
def test_face_page_offers_held_out_faces_40_ordered_sliders_and_alignment(page, server, face_run):
    """Face examples are the run's held-out faces (the last 10% of its folder: 000901.jpg on), 40 sliders
    in FACE_ORDER with the original page's names, alignment offered and ticked."""
    from data_loaders import celeba  # noqa: PLC0415

    info = ok(call(server, "/api/info"))
    assert info["face"] and info["can_align"] and info["align_default"]
    assert len(info["directions"]) == 40 and info["directions"][:len(FACE_ORDER)] == list(FACE_ORDER)
    assert (info["labels"]["Young"], info["labels"]["No_Beard"], info["labels"]["Smiling"]) == ("Age", "Beard", "Smiling")
    folder = celeba.CelebAFolder(face_run[1])
    held_out, _ = folder.split_files("valid")
    assert os.path.basename(held_out[0]) == "000901.jpg"
    want = folder.load(held_out[:8], 64)
    for k in (0, 7):
        assert ok(call(server, f"/api/example/{k}"))["image"] == data_url(want[k])
    titles = page.execute_script("return Array.from(document.querySelectorAll('#sliders .slider span'), s => s.textContent)")
    assert titles[:5] == ["Smiling", "Age", "Narrow Eyes", "Blond Hair", "Beard"] and len(titles) == 40
    assert page.find_element("id", "align").is_selected() and page.find_element("id", "align-row").is_displayed()
    assert len(page.find_elements("css selector", "#examples img.example")) == 8


# --- a real photo ------------------------------------------------------------------------------------------
def eyes_in(image):
    """Where her eyes are in a model-size image that should be the original's crop: each eye of the crop
    made from her labelled eyes (a 40 x 24 px patch around its place) found in `image` enlarged to 256 px
    by normalised cross-correlation; [(dx, dy, score)] per eye, dx, dy in px of the 256 px crop."""
    import cv2  # noqa: PLC0415

    big = cv2.resize(np.ascontiguousarray(image), (256, 256), interpolation=cv2.INTER_CUBIC)
    truth = align.align_to_eyes(photo(), *human_eyes())
    out = []
    for tx, ty in align.eye_targets():
        x0, y0 = int(round(tx)) - 20, int(round(ty)) - 12
        _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(big, truth[y0:y0 + 24, x0:x0 + 40], cv2.TM_CCOEFF_NORMED))
        out.append((x - x0, y - y0, score))
    return out


def test_upload_aligns_the_photo_on_her_eyes_and_reconstructs_it(page, glow):
    """In the model-size input the page shows, her eyes (labelled by hand) are within 5 px (of the 256 px
    crop) of the places the original puts them (unaligned they are 15 to 70 px off). The reconstruction
    is the library's, and the flow gives the 5-bit input back."""
    shown = upload_in_page(page, PHOTO)
    assert page.execute_script("return document.getElementById('error').hidden")
    given = pixels(page.execute_script("return document.getElementById('input-img').src"))
    for dx, dy, score in eyes_in(given):
        assert np.hypot(dx, dy) <= 5 and score > 0.8, (dx, dy, score)
    rec = pixels(shown)
    np.testing.assert_array_equal(rec, glow.reconstruct(given, noise="centre")[0])
    assert np.abs(rec.astype(int) - given // 8 * 8).max() <= 8


def sense(image, base, target):
    """Correlation of the pixel change image - base with the pixel difference `target`."""
    a = (image.astype(float) - base).ravel()
    return float(np.corrcoef(a, target.ravel())[0, 1])


@pytest.fixture(scope="module")
def attribute_means(face_run):
    """{attribute: mean face with it - mean face without it} over the training faces the directions came
    from, in pixels: what moving along a direction should add to a face, to first order."""
    from data_loaders import celeba  # noqa: PLC0415

    folder = celeba.CelebAFolder(face_run[1])
    paths, attrs = folder.split_files("train")
    x = folder.load(paths, 64).astype(np.float64)
    col = {n: i for i, n in enumerate(celeba.CELEBA_ATTRIBUTES)}
    return {n: x[attrs[:, col[n]] == 1].mean(0) - x[attrs[:, col[n]] == -1].mean(0) for n in ("Blond_Hair", "No_Beard")}


@pytest.mark.parametrize("name,attribute,sign", [("Blond_Hair", "Blond_Hair", 1), ("No_Beard", "No_Beard", -1)],
                         ids=["Blond Hair", "Beard (No_Beard negated)"])
def test_a_slider_moves_the_face_in_its_directions_sense(page, server, attribute_means, name, attribute, sign):
    """Moving a slider up changes the face's pixels the way the attribute's faces differ from the others
    (Beard: the way faces without No_Beard differ), down the other way; the page's image is the API's."""
    upload_in_page(page, PHOTO)
    current = page.execute_script("return state.current")
    base = pixels(current["image"]).astype(float)
    selector = f"#sliders input[data-name='{name}']"
    start = float(page.execute_script(f"return document.querySelector(\"{selector}\").dataset.start"))
    moved = {}
    for step in (1.0, -1.0):
        v = version(page)
        set_range(page, selector, round(start + step, 2))
        moved[step] = settled(page, v)
        value = float(page.execute_script(f"return document.querySelector(\"{selector}\").value"))
        want = ok(call(server, "/api/manipulate",
                       {"id": current["id"], "alphas": {name: value - start}}))["image"]
        assert moved[step] == want
    target = sign * attribute_means[attribute]
    up, down = sense(pixels(moved[1.0]), base, target), sense(pixels(moved[-1.0]), base, target)
    assert up > 0.3 and down < -0.3, (up, down)
    set_range(page, selector, start)


def test_blend_of_two_faces(page, server, glow):
    """The photo blended with a held-out face: the ends are the two reconstructions, the middle is
    decode((z1 + z2) / 2) of the library's own encodings."""
    upload_in_page(page, PHOTO)
    page.find_element("css selector", "#blend-examples img[data-k='3']").click()
    wait(page, "document.body.dataset.pending === '0' && !document.getElementById('blend').disabled")
    first, second = page.execute_script("return [state.current, state.second]")
    shown = {}
    for alpha in (1, 0.5, 0):
        v = version(page)
        set_range(page, "#blend", alpha)
        shown[alpha] = settled(page, v)
    assert shown[0] == first["image"] and shown[1] == second["image"] and shown[0.5] not in (shown[0], shown[1])
    example = pixels(ok(call(server, "/api/example/3"))["image"])
    z = glow.encode(np.stack([pixels(first["input"]), example]), noise="centre")
    assert shown[0.5] == data_url(glow.mix(z[0], z[1], [0.5])[0])


def test_temperature_sampling(page, glow):
    """A sample at temperature 0.6 and seed 5 is the library's; temperature 0 gives one face for any seed."""
    set_range(page, "#temperature", 0.6)
    assert draw(page, 5) == data_url(glow.sample(1, 0.6, seed=5)[0])
    set_range(page, "#temperature", 0)
    means = [draw(page, seed) for seed in (1, 2)]
    assert means[0] == means[1] == data_url(glow.sample(1, 0.0, seed=3)[0])
    set_range(page, "#temperature", 0.7)


def test_a_photo_without_a_face_gets_one_message(page, tmp_path):
    """Alignment on, a photo of no face: the page says so in one line and keeps the current image."""
    rng = np.random.default_rng(0)
    blank = np.clip(np.linspace(60, 200, 240)[None, :, None] + rng.normal(0, 4, (180, 240, 3)), 0, 255)
    Image.fromarray(blank.astype(np.uint8)).save(tmp_path / "wall.jpg")
    before = page.execute_script("return document.getElementById('current').src")
    page.execute_script("document.getElementById('upload').value = ''")
    page.find_element("id", "upload").send_keys(str(tmp_path / "wall.jpg"))
    message = wait(page, "!document.getElementById('error').hidden && document.body.dataset.pending === '0' "
                         "&& document.getElementById('error').textContent")
    assert message == "no face found in the upload; untick 'align face' to use it as it is"
    assert page.execute_script("return document.getElementById('current').src") == before


# --- OpenAI's graph (the 16 px fixture) in the browser -----------------------------------------------------
@pytest.fixture(scope="module")
def graph_page(browser, tmp_path_factory):  # noqa: F811 (the browser fixture of demo_client)
    """The page of `serve --graph FIXTURE --directions z_manipulate.npy --examples tests/fixtures/faces`."""
    folder = tmp_path_factory.mktemp("graph_server")
    np.save(folder / "z_manipulate.npy", np.random.default_rng(3).standard_normal((40, 768)).astype(np.float32))
    with serving(["--graph", GRAPH, "--directions", folder / "z_manipulate.npy", "--examples", FACES],
                 folder / "serve.log") as url:
        browser.get(url + "/")
        wait(browser, "document.body.dataset.ready === '1'")
        yield browser, url, folder / "z_manipulate.npy"


@pytest.fixture(scope="module")
def graph():
    from glow_tf.original_graph import OriginalGraph  # noqa: PLC0415

    return OriginalGraph(str(GRAPH))


def test_serve_graph_in_the_browser(graph_page, graph):
    """The photo of --examples, aligned, is the example; clicking it encodes it; a slider gives the
    graph's own manipulate; an upload is aligned; a sample is the graph's own."""
    from glow_tf import directions  # noqa: PLC0415

    page, url, z_file = graph_page
    info = ok(call(url, "/api/info"))
    assert info["face"] and info["can_align"] and info["image_size"] == 16 and info["examples"] == 1
    assert info["directions"][:5] == ["Smiling", "Young", "Narrow_Eyes", "Blond_Hair", "No_Beard"]
    example = pixels(ok(call(url, "/api/example/0"))["image"])
    want = np.asarray(Image.fromarray(align.align_to_eyes(photo(), *human_eyes())).resize((16, 16), Image.LANCZOS))
    unaligned = np.asarray(Image.fromarray(photo()).resize((16, 16), Image.LANCZOS))
    assert np.abs(example.astype(float) - want).mean() < 0.5 * np.abs(unaligned.astype(float) - want).mean()
    page.find_element("css selector", "#examples img[data-k='0']").click()  # (the page encoded it at start too)
    wait(page, "document.body.dataset.pending === '0'")
    current = page.execute_script("return state.current")
    z = graph.encode(example[None], noise="centre")[0]
    assert current["image"] == data_url(graph.decode(z[None])[0])
    smiling = directions.load_directions(str(z_file))["Smiling"]
    selector = "#sliders input[data-name='Smiling']"
    start = float(page.execute_script(f"return document.querySelector(\"{selector}\").dataset.start"))
    v = version(page)
    set_range(page, selector, round(start + 0.5, 2))
    shown = settled(page, v)
    value = float(page.execute_script(f"return document.querySelector(\"{selector}\").value"))
    assert shown == data_url(graph.manipulate(z, smiling, [value - start])[0]) and shown != current["image"]
    upload_in_page(page, PHOTO)
    assert page.execute_script("return state.current.aligned")
    np.testing.assert_array_equal(pixels(page.execute_script("return state.current.input")), example)
    set_range(page, "#temperature", 0.8)
    page.execute_script("document.getElementById('seed').value = '4'")
    v = version(page)
    page.find_element("id", "random").click()
    assert settled(page, v) == data_url(graph.sample(1, 0.8, seed=4)[0])
