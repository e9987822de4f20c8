"""The interactive demo (`python -m glow_tf serve`): its JSON API over real HTTP against the library's
own outputs (same PNG bytes), bad input, concurrency, the page in a real headless Chromium, the class
directions, the several-attribute `manipulate` command and the face alignment's geometry.

The session's class-conditional digits run (conftest.py: `digits_run`) is served by one server
process (the real CLI command) for every test here.
"""
import base64
import io
import os
import threading
import urllib.request

import numpy as np
import pytest
from PIL import Image

import glow_tf
from glow_tf import directions
from glow_tf import images as img
from glow_tf.demo import align
from glow_tf.demo.app import data_url, gif_bytes
from glow_tf.demo.startup import run_test_data

from demo_client import browser, call, draw, ok, set_range, serving, settled, upload, version, wait  # noqa: F401 (browser: a fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- the server and the same model in this process ----------------------------------------------------
@pytest.fixture(scope="session")
def server(digits_run, tmp_path_factory):
    """The base URL of `python -m glow_tf serve --logdir RUN` on a free port."""
    with serving(["--logdir", digits_run], tmp_path_factory.mktemp("server") / "serve.log", REPO,
                 {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}) as url:
        yield url


@pytest.fixture(scope="session")
def glow(digits_run):
    """The served model in this process, its variables on the CPU as the server's (--cpu)."""
    import tensorflow as tf  # noqa: PLC0415

    with tf.device("/CPU:0"):
        model, _ = glow_tf.load_run(str(digits_run))
    return model


@pytest.fixture(scope="session")
def test_images(glow):
    return run_test_data({"problem": "digits"}, glow.config)


@pytest.fixture(scope="session")
def class_dirs(digits_run, server):
    """The class directions the server computed at start-up (its cached directions file)."""
    return directions.load_directions(str(digits_run / "demo" / "class_directions.npz"))


# --- HTTP helpers ---------------------------------------------------------------------------------
def png(image):
    buf = io.BytesIO()
    img._pil(image).save(buf, format="PNG")
    return buf.getvalue()


def pixels(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def encode_example(url, k, y):
    return ok(call(url, "/api/encode", {"example": k, "y": y}))


# --- the API against the library ------------------------------------------------------------------
def test_info_page_and_static_files(server, glow):
    info = ok(call(server, "/api/info"))
    assert (info["image_size"], info["channels"], info["n_y"], info["ycond"]) == (8, 3, 10, True)
    assert info["directions"] == [f"class {c}" for c in range(10)] and not info["can_align"]
    for path, needle in (("/", b"<title>Glow demo"), ("/static/demo.js", b"/api/manipulate")):
        with urllib.request.urlopen(server + path, timeout=30) as r:
            assert r.status == 200 and needle in r.read()


def test_encode_upload_and_example_equal_the_library(server, glow, test_images, class_dirs):
    x, y = test_images
    answer = ok(upload(server, png(x[3]), [("y", int(y[3]))]))
    z = glow.encode(x[3:4], y[3:4], noise="centre")
    assert answer["input"] == data_url(x[3])
    assert answer["image"] == data_url(glow.decode(z, y[3:4])[0])  # the same PNG bytes
    names = list(class_dirs)
    projection = glow.project(z[0], np.stack([class_dirs[n] for n in names]))
    np.testing.assert_allclose([answer["projection"][n] for n in names], projection, rtol=1e-5, atol=1e-6)
    assert ok(call(server, "/api/encode", {"example": 3, "y": int(y[3])}))["image"] == answer["image"]
    # an upload of another size is centre-cropped and resized to the model's size
    big = np.kron(x[3], np.ones((5, 4, 1), np.uint8))  # 40 x 32
    answer = ok(upload(server, png(big), [("y", 1)]))
    want = img.centre_crop_resize(Image.fromarray(big), 8)
    assert answer["input"] == data_url(want)
    assert answer["image"] == data_url(glow.reconstruct(want, [1], noise="centre")[0])


def test_manipulate_one_and_several_directions_equal_the_library(server, glow, test_images, class_dirs):
    x, y = test_images
    e = encode_example(server, 0, int(y[0]))
    z = glow.encode(x[:1], y[:1], noise="centre")[0]
    for alphas in ({"class 1": 0.8}, {"class 1": 0.5, "class 7": -1.25, "class 3": 0.3}):
        got = ok(call(server, "/api/manipulate", {"id": e["id"], "alphas": alphas}))["image"]
        d = np.stack([class_dirs[n] for n in alphas])
        want = glow.manipulate(z, d, np.asarray(list(alphas.values()), np.float32), int(y[0]))[0]
        assert got == data_url(want)
    assert got != e["image"]
    # another class for decoding: the same latent with another label
    got = ok(call(server, "/api/manipulate", {"id": e["id"], "alphas": {"class 1": 0.0}, "y": 4}))["image"]
    assert got == data_url(glow.decode(z[None], [4])[0])


def test_mix_random_and_ranges_equal_the_library(server, glow, test_images, class_dirs):
    x, y = test_images
    a, b = encode_example(server, 1, int(y[1])), encode_example(server, 2, int(y[2]))
    z = glow.encode(x[1:3], y[1:3], noise="centre")
    for alpha in (0, 0.35, 1):
        got = ok(call(server, "/api/mix", {"id1": a["id"], "id2": b["id"], "alpha": alpha}))["image"]
        assert got == data_url(glow.mix(z[0], z[1], [alpha], int(y[1]))[0])
    got = ok(call(server, "/api/mix_range", {"id1": a["id"], "id2": b["id"], "points": 4}))
    frames = glow.mix(z[0], z[1], np.linspace(0, 1, 4), int(y[1]))
    assert got["images"] == [data_url(f) for f in frames] and got["strip"] == data_url(img.strip(frames))
    assert got["gif"] == data_url(None, "image/gif", gif_bytes(frames))
    got = ok(call(server, "/api/manipulate_range", {"id": a["id"], "attr": "class 2", "points": 5,
                                                    "alphas": {"class 5": 0.5, "class 2": 9.0}}))
    d = np.stack([class_dirs["class 5"], class_dirs["class 2"]])
    ks = directions.range_alphas(5)
    frames = glow.manipulate(z[0], d, np.stack([np.full(5, 0.5), ks], axis=1), int(y[1]))
    assert got["images"] == [data_url(f) for f in frames]
    # random: the library's sample for (temperature, seed); per-level temperatures; temperature 0
    got = ok(call(server, "/api/random", {"temperature": 0.6, "seed": 11, "y": 3}))
    assert got["image"] == data_url(glow.sample(1, 0.6, [3], seed=11)[0]) and got["seed"] == 11
    got = ok(call(server, "/api/random", {"temperature": [0.2, 0.9], "seed": 5, "y": 2}))
    assert got["image"] == data_url(glow.sample(1, [0.2, 0.9], [2], seed=5)[0])
    zero = [ok(call(server, "/api/random", {"temperature": 0, "seed": s, "y": 2}))["image"] for s in (1, 2)]
    assert zero[0] == zero[1] == data_url(glow.sample(1, 0.0, [2], seed=9)[0])


BAD = [
    ("not an image", "upload", b"hello, not a picture", 400, "not a readable image"),
    ("20 MB upload", "upload", b"\x89PNG" + bytes(20 * 1024 * 1024), 413, "larger than the 10 MB"),
    ("unknown attribute", "/api/manipulate", {"id": "$id", "alphas": {"Smiling": 1}}, 400,
     "unknown direction 'Smiling'"),
    ("temperature -1", "/api/random", {"temperature": -1, "y": 0}, 400, "temperature -1.0 is invalid"),
    ("temperature NaN", "/api/random", {"temperature": float("nan"), "y": 0}, 400, "temperature nan is invalid"),
    ("temperature text", "/api/random", {"temperature": "hot", "y": 0}, 400, "'hot' is not a number"),
    ("missing field", "/api/mix", {"alpha": 0.5}, 400, "missing field 'id1'"),
    ("missing class", "/api/random", {"temperature": 0.5}, 400, "missing y"),
    ("class out of range", "/api/encode", {"example": 0, "y": 10}, 400,
     "y 10: class 10 is out of range: the model has n_y=10 classes (0..9)"),
    ("unknown id", "/api/mix", {"id1": "nope", "id2": "nope", "alpha": 0}, 404, "'nope' is unknown"),
    ("alpha not a number", "/api/mix", {"id1": "$id", "id2": "$id", "alpha": "x"}, 400,
     "alpha 'x': expected a finite number"),
    ("points too many", "/api/mix_range", {"id1": "$id", "id2": "$id", "points": 1000}, 400,
     "points 1000: expected an integer from 2 to 33"),
    ("not JSON", "/api/random", b"{{", 400, "expected a JSON object"),
    ("unknown route", "/api/nothing", {}, 404, "404 Not Found"),
    ("align on an 8 px model", "upload-align", None, 400, "face alignment applies to RGB models of at least 64"),
]


@pytest.mark.parametrize("what,path,body,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_one_line_json_error(server, test_images, what, path, body, status, message):
    if isinstance(body, dict) and "$id" in body.values():
        key = encode_example(server, 0, int(test_images[1][0]))["id"]
        body = {k: key if v == "$id" else v for k, v in body.items()}
    if path == "upload":
        got = upload(server, body, [("y", 0)])
    elif path == "upload-align":
        got = upload(server, png(test_images[0][0]), [("y", 0), ("align", "1")])
    elif isinstance(body, bytes):
        got = call(server, path, data=body, headers={"Content-Type": "application/json"})
    else:
        got = call(server, path, body)
    code, answer = got
    assert code == status, answer
    assert isinstance(answer, dict) and list(answer) == ["error"], answer
    assert message in answer["error"] and "\n" not in answer["error"] and "Traceback" not in answer["error"]


def test_eight_concurrent_requests_are_all_answered_correctly(server, glow, test_images, class_dirs):
    x, y = test_images
    e = encode_example(server, 4, int(y[4]))
    z = glow.encode(x[4:5], y[4:5], noise="centre")[0]
    jobs = []
    for k in range(8):
        if k % 2:
            jobs.append(("/api/manipulate", {"id": e["id"], "alphas": {"class 8": 0.1 * k}},
                         glow.manipulate(z, class_dirs["class 8"], [0.1 * k], int(y[4]))[0]))
        else:
            jobs.append(("/api/random", {"temperature": 0.5, "seed": 100 + k, "y": k},
                         glow.sample(1, 0.5, [k], seed=100 + k)[0]))
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        results[i] = call(server, jobs[i][0], jobs[i][1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for (path, _, want), answer in zip(jobs, results):
        assert ok(answer)["image"] == data_url(want), path


def test_class_directions_are_class_mean_differences_and_cached(digits_run, glow, test_images, class_dirs):
    x, y = test_images
    z = glow.encode(x, y, noise="centre", batch_size=256)
    for c in (0, 6):
        want = z[y == c].mean(0) - z[y != c].mean(0)
        np.testing.assert_allclose(class_dirs[f"class {c}"], want, rtol=1e-4, atol=1e-5)
    with open(digits_run / "demo" / "class_directions.checkpoint") as f:
        assert f.read().split()[1] == str(len(x))


def test_cli_manipulate_with_several_attributes(digits_run, glow, test_images, class_dirs, tmp_path):
    from glow_tf.__main__ import main  # noqa: PLC0415

    x, y = test_images
    img.save_png(x[5], tmp_path / "a.png")
    out = tmp_path / "m.png"
    assert main(["manipulate", str(tmp_path / "a.png"), "--logdir", str(digits_run), "--directions",
                 str(digits_run / "demo" / "class_directions.npz"), "--attr", "class 1=0.5", "--attr", "class 9=-1",
                 "--alphas", "0", "1", "2", "--noise", "centre", "--y", str(y[5]), "--out", str(out), "--quiet"]) == 0
    z = glow.encode(x[5:6], y[5:6], noise="centre")[0]
    d = np.stack([class_dirs["class 1"], class_dirs["class 9"]])
    want = glow.manipulate(z, d, np.array([[0, 0], [0.5, -1], [1, -2]], np.float32), int(y[5]))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), img.strip(want))
    assert main(["manipulate", str(tmp_path / "a.png"), "--logdir", str(digits_run), "--directions",
                 str(digits_run / "demo" / "class_directions.npz"), "--attr", "class 1=much", "--y", "0",
                 "--out", str(out), "--quiet"]) == 2


# --- the page in a real browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(browser, server):
    browser.get(server + "/")
    wait(browser, "document.body.dataset.ready === '1'")
    return browser


def test_page_upload_shows_the_reconstruction(page, server, test_images, tmp_path):
    x, y = test_images
    path = tmp_path / "seven.png"
    Image.fromarray(np.kron(x[7], np.ones((4, 4, 1), np.uint8))).save(path)  # 32 px: cropped and resized
    page.execute_script("document.getElementById('y').value = arguments[0]", str(y[7]))
    v = version(page)
    page.find_element("id", "upload").send_keys(str(path))
    shown = settled(page, v)
    want = ok(upload(server, path.read_bytes(), [("y", int(y[7])), ("align", "0")]))
    assert shown == want["image"] and page.find_element("id", "download").get_attribute("href") == shown
    assert page.execute_script("return document.getElementById('input-img').src") == want["input"]
    assert page.execute_script("return document.getElementById('error').hidden")


def test_page_slider_equals_the_api_manipulate(page, server):
    page.find_element("css selector", "#examples img[data-k='2']").click()
    wait(page, "document.body.dataset.pending === '0'")
    v = version(page)
    start = float(page.execute_script("return document.querySelector(\"#sliders input[data-name='class 4']\")"
                                      ".dataset.start"))
    set_range(page, "#sliders input[data-name='class 4']", round(start + 0.75, 2))
    shown = settled(page, v)
    moved = float(page.execute_script("return document.querySelector(\"#sliders input[data-name='class 4']\").value"))
    current = page.execute_script("return state.current")
    want = ok(call(server, "/api/manipulate", {"id": current["id"], "alphas": {"class 4": moved - start}}))["image"]
    assert shown == want and shown != current["image"]


def test_page_blend_ends_are_the_two_reconstructions(page, server):
    page.find_element("css selector", "#examples img[data-k='0']").click()
    wait(page, "document.body.dataset.pending === '0'")
    page.find_element("css selector", "#blend-examples img[data-k='5']").click()
    wait(page, "document.body.dataset.pending === '0' && !document.getElementById('blend').disabled")
    first, second = page.execute_script("return [state.current.image, state.second.image]")
    for alpha, want in ((1, second), (0, first)):
        v = version(page)
        set_range(page, "#blend", alpha)
        assert settled(page, v) == want
    set_range(page, "#blend", 0.5)
    page.find_element("id", "blend-strip").click()
    wait(page, "document.body.dataset.pending === '0' && !document.getElementById('range').hidden")
    assert page.execute_script("return document.getElementById('range-gif').href").startswith("data:image/gif")


def test_page_temperature_zero_gives_one_image_for_any_seed(page, server, tmp_path):
    set_range(page, "#temperature", 0)
    shown = [draw(page, seed) for seed in (1, 2)]
    assert shown[0] == shown[1]
    y = int(page.execute_script("return document.getElementById('y').value"))
    assert shown[0] == ok(call(server, "/api/random", {"temperature": 0, "seed": 3, "y": y}))["image"]
    set_range(page, "#temperature", 1)
    assert draw(page) != shown[0]
    # per-level temperatures behind the "advanced" toggle
    page.find_element("id", "advanced").click()
    assert page.find_element("id", "levels").is_displayed()
    set_range(page, ".level-temperature", 0.3)  # the first (split) level; the top keeps 0.7
    want = ok(call(server, "/api/random", {"temperature": [0.3, 0.7], "seed": 2, "y": y}))["image"]
    assert draw(page) == want
    page.find_element("id", "advanced").click()
    page.find_element("css selector", "#examples img[data-k='0']").click()
    wait(page, "document.body.dataset.pending === '0'")
    page.save_screenshot(str(tmp_path / "demo.png"))
    assert Image.open(tmp_path / "demo.png").size[0] > 600


# --- face alignment ------------------------------------------------------------------------------
def synthetic_face(left_eye, right_eye, shape=(420, 360)):
    """A grey canvas with a skin-coloured oval and two blue discs (radius 9) at the given eye centres."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    face = np.full((h, w, 3), 200, np.uint8)
    cx, cy = (left_eye[0] + right_eye[0]) / 2, (left_eye[1] + right_eye[1]) / 2 + 40
    face[((xx - cx) / 130) ** 2 + ((yy - cy) / 170) ** 2 < 1] = (224, 172, 140)
    for ex, ey in (left_eye, right_eye):
        face[(xx - ex) ** 2 + (yy - ey) ** 2 <= 81] = (20, 20, 230)
    return face


def blue_centroids(image):
    """Centroids (x, y) of the blue pixels in the left and right halves of an image."""
    dark = (image[..., 2].astype(int) - image[..., 0]) > 100
    out = []
    for half in (slice(0, image.shape[1] // 2), slice(image.shape[1] // 2, None)):
        ys, xs = np.nonzero(dark[:, half])
        out.append((xs.mean() + (half.start or 0), ys.mean()))
    return out


def test_alignment_puts_the_eyes_where_the_original_does():
    # the original's FaceAligner(desiredFaceWidth=256, desiredLeftEye=(0.371, 0.480)): eyes at
    # x = 0.371 * 256 and (1 - 0.371) * 256, y = 0.48 * 256
    targets = align.eye_targets()
    assert np.allclose(targets, [(94.976, 122.88), (161.024, 122.88)])
    for left, right in (((120.0, 200.0), (230.0, 160.0)), ((150.5, 120.0), (200.0, 121.0))):  # tilted; small
        aligned = align.align_to_eyes(synthetic_face(left, right), left, right)
        assert aligned.shape == (256, 256, 3)
        np.testing.assert_allclose(blue_centroids(aligned), targets, atol=2.0)
    assert align.align_face(np.full((300, 300, 3), 128, np.uint8)) is None  # no face: None, no error


# --- an unconditional run without directions or data, through Flask's test client ---------------------
def test_an_unconditional_run_without_directions_or_data():
    """Examples are the model's own samples; no class is accepted; manipulating needs a direction."""
    from glow_tf.demo.app import DemoState, create_app  # noqa: PLC0415
    from glow_tf.demo.startup import prepare  # noqa: PLC0415

    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=8, flow_coupling="additive")
    model = glow_tf.Glow(config, seed=1)
    model.initialize(run_test_data({"problem": "digits"}, config)[0][:64])
    found, examples, labels, flags = prepare(model)
    assert found == {} and labels is None and flags == {}
    np.testing.assert_array_equal(examples, model.sample(8, 0.7, seed=0))
    client = create_app(DemoState(model, found, examples, labels)).test_client()
    info = client.get("/api/info").get_json()
    assert (info["ycond"], info["n_y"], info["directions"], info["examples"]) == (False, None, [], 8)
    answer = client.post("/api/encode", json={"example": 2}).get_json()
    assert answer["image"] == data_url(model.reconstruct(examples[2:3], noise="centre")[0])
    assert answer["projection"] == {}
    for path, body, message in (("/api/random", {"temperature": 0.5, "y": 1}, "y 1: class labels y=1 given, "
                                 "but this model is unconditional"),
                                ("/api/manipulate", {"id": answer["id"], "alphas": {}}, "(this run has no directions)")):
        r = client.post(path, json=body)
        assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()


def test_align_face_in_the_api(monkeypatch):
    """A 64 px RGB model offers alignment: the upload is warped to the eyes' places, then resized;
    without a face, a 422 asks to untick the box. (The eyes are given: a drawn face is no Haar face.)"""
    from glow_tf.demo.app import DemoState, create_app  # noqa: PLC0415

    config = glow_tf.GlowConfig(image_size=64, n_levels=2, depth=1, width=4, flow_coupling="additive")
    model = glow_tf.Glow(config, seed=2)
    model.initialize(np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    client = create_app(DemoState(model)).test_client()
    assert client.get("/api/info").get_json()["can_align"]
    eyes = ((120.0, 200.0), (230.0, 160.0))
    face = synthetic_face(*eyes)

    def post(image):
        return client.post("/api/encode", data={"image": (io.BytesIO(png(image)), "f.png"), "align": "1"})

    r = post(np.full((300, 300, 3), 128, np.uint8))
    assert r.status_code == 422 and "no face found" in r.get_json()["error"]
    monkeypatch.setattr(align, "find_eyes", lambda image, *_: eyes if image.shape == face.shape else None)
    answer = post(face).get_json()
    want = img.centre_crop_resize(Image.fromarray(align.align_to_eyes(face, *eyes)), 64)
    assert answer["aligned"] and answer["input"] == data_url(want)
    assert answer["image"] == data_url(model.reconstruct(want, noise="centre")[0])
