"""The one rule set for class labels (glow_tf.latents.check_labels) as a user meets it: the model's NumPy
methods, its graph-level methods (eager and inside tf.function), the latent tools' command line and the
demo's API all refuse the same bad labels with the same message, and accept the same good ones."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from glow_tf import Glow, GlowConfig
from glow_tf.__main__ import main
from glow_tf.demo.app import DemoState, create_app

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YCOND = os.path.join(REPO, "tests", "fixtures", "original_glow", "affine_lu_ycond")  # 8x8 RGB, n_y=10
TINY = dict(image_size=8, n_levels=2, depth=1, width=4)

# labels given for two images of a model with n_y=3 -> the message that names the bad value
BAD = [
    pytest.param(None, r"class-conditional \(ycond=True, n_y=3\): pass the labels y, one class 0..2 for all "
                       r"images, or one per image", id="missing"),
    pytest.param(np.array([0.0, 1.0], np.float32), r"class labels y=\[0.0, 1.0\] are float32; expected integer "
                                                   r"classes 0..2", id="float array"),
    pytest.param(2.0, r"class labels y=2.0 are float64; expected integer classes 0..2", id="float 2.0"),
    pytest.param(True, r"class labels y=True are bool; expected integer classes 0..2", id="bool"),
    pytest.param(["1", "2"], r"class labels y=\['1', '2'\] are str.*; expected integer classes 0..2", id="text"),
    pytest.param([[0, 1]], r"class labels y=\[\[0, 1\]\] have shape \(1, 2\); expected one class for all images, "
                           r"or one per image \[N\]", id="2-d"),
    pytest.param([0, 1, 2], r"3 class labels given for 2 images; expected one class for all images, or one per "
                            r"image", id="count"),
    pytest.param([0, 3], r"class 3 is out of range: the model has n_y=3 classes \(0..2\)", id="above n_y"),
    pytest.param(np.array([-1, 0], np.int64), r"class -1 is out of range: the model has n_y=3 classes", id="negative"),
]


@pytest.fixture(scope="module")
def ycond_glow():
    """A class-conditional tiny model whose weights are random, so that its labels change its output (at
    initialisation the class embedding is zero and every label would give the same numbers)."""
    glow = Glow(GlowConfig(**TINY, ycond=True, n_y=3), seed=0)
    for i, v in enumerate(glow.trainable_variables):
        v.assign(tf.random.stateless_normal(v.shape, [i, 1], stddev=0.1))
    return glow


def _images(n, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(n, 8, 8, 3)).astype(np.uint8)


@pytest.mark.parametrize("y, message", BAD)
def test_every_method_refuses_bad_labels_with_one_message(ycond_glow, y, message):
    x = _images(2)
    z = ycond_glow.sample_latents(2, 0.5, seed=0)
    for call in (lambda: ycond_glow.encode(x, y), lambda: ycond_glow.decode(z, y),
                 lambda: ycond_glow.reconstruct(x, y), lambda: ycond_glow.objective(x, y),
                 lambda: ycond_glow.decode_with_log_det(ycond_glow.flat_to_eps(z), y)):
        with pytest.raises(ValueError, match=message):
            call()


def test_inside_tf_function_the_type_is_checked_by_the_same_rules(ycond_glow):
    x = tf.constant(_images(2))

    @tf.function
    def bits(y):
        return ycond_glow.objective(x, y, seed=[0, 0])["bits_x"]

    with pytest.raises(ValueError, match=r"class labels y are float32; expected integer classes 0..2"):
        bits.get_concrete_function(tf.TensorSpec([2], tf.float32))
    with pytest.raises(ValueError, match=r"3 class labels given for 2 images"):
        bits.get_concrete_function(tf.TensorSpec([3], tf.int32))
    with pytest.raises(ValueError, match=r"class labels y have shape \(2, 1\); expected one class"):
        bits.get_concrete_function(tf.TensorSpec([2, 1], tf.int64))
    # one class for the whole batch, or one per image, as eagerly
    traced = bits(tf.constant([2, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(bits(tf.constant(2, tf.int32)).numpy(), traced)
    eager = ycond_glow.objective(x, 2, seed=[0, 0])["bits_x"].numpy()
    np.testing.assert_allclose(eager, traced, rtol=1e-6)  # float round-off between eager and traced
    assert np.abs(bits(tf.constant([0, 0])).numpy() - traced).max() > 1e-3, "the labels must reach the model"


def test_one_class_a_list_and_any_integer_dtype_give_the_same_images(ycond_glow):
    z = ycond_glow.sample_latents(3, 0.7, seed=1)
    want = ycond_glow.decode(z, np.array([1, 1, 1], np.int32))
    for y in (1, np.int64(1), [1, 1, 1], np.array([1, 1, 1], np.uint8)):
        np.testing.assert_array_equal(ycond_glow.decode(z, y), want)
    assert not np.array_equal(ycond_glow.decode(z, 2), want), "the labels must reach the model"


def test_an_unconditional_model_refuses_labels_where_a_user_gives_them():
    glow = Glow(GlowConfig(**TINY), seed=0)
    x = _images(2)
    message = r"class labels y=1 given, but this model is unconditional \(ycond=False\); expected no labels"
    with pytest.raises(ValueError, match=message):
        glow.encode(x, 1)
    with pytest.raises(ValueError, match=message):
        glow.sample(2, y=1)
    # the graph-level objective takes the data's labels for every problem, as the original's training did
    np.testing.assert_array_equal(glow.objective(x, np.array([5, 7]), seed=[0, 0])["bits_x"].numpy(),
                                  glow.objective(x, seed=[0, 0])["bits_x"].numpy())


def test_demo_api_gives_the_same_messages(ycond_glow):
    client = create_app(DemoState(ycond_glow, {}, _images(4), [0, 1, 2, 0])).test_client()
    for y, message in [(3, "y 3: class 3 is out of range: the model has n_y=3 classes (0..2)"),
                       (1.0, "y 1.0: class labels y=1.0 are float64; expected integer classes 0..2"),
                       (True, "y True: class labels y=True are bool; expected integer classes 0..2"),
                       ([0, 1], "y [0, 1]: 2 class labels given for 1 images"),
                       (None, "missing y: this model is class-conditional (ycond=True, n_y=3)")]:
        answer = client.post("/api/random", json={"temperature": 0.5, "seed": 0, "y": y})
        assert answer.status_code == 400 and message in answer.get_json()["error"], (y, answer.get_json())
    # a form field's text "2" is the class 2
    assert client.post("/api/random", json={"temperature": 0.5, "seed": 0, "y": "2"}).get_json()["y"] == 2


def test_cli_names_the_bad_labels(tmp_path, capsys):
    model = ["--restore_path", os.path.join(YCOND, "model.ckpt"), "--hps", os.path.join(YCOND, "hps.json"),
             "--quiet", "--out", str(tmp_path / "x.png")]
    assert main(["sample", *model, "--n", "3", "--y", "1,2,12"]) == 2
    assert capsys.readouterr().err == ("python -m glow_tf sample: error: --y 1,2,12: class 12 is out of range: "
                                       "the model has n_y=10 classes (0..9)\n")
    assert main(["sample", *model, "--y", "2.0"]) == 2
    assert "--y '2.0': expected a class number or a comma-separated list of them" in capsys.readouterr().err
    # through the real entry point: one line, exit status 2, nothing written
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.run([sys.executable, "-m", "glow_tf", "encode", *model[:-2], os.path.join(REPO, "docs",
                           "quickstart_samples.png"), "--resize", "--y", "-1", "--out", str(tmp_path / "z.npz")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr == ("python -m glow_tf encode: error: --y -1: class -1 is out of range: the model has "
                           "n_y=10 classes (0..9)\n")
    assert not (tmp_path / "z.npz").exists()
