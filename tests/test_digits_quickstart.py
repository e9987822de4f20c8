"""Tests for the quick start's data (the digits_4bit problem), for the judge of
bench/quickstart_quality.py on real digits against noise."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import data_loaders
from data_loaders import digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import quickstart_quality as quality  # noqa: E402


# --- digits_4bit -----------------------------------------------------------------------------------
def sklearn_counts():
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.images, d.target


def test_digits_4bit_at_8x8_are_the_counts_on_16_levels_with_the_digits_split():
    x_train, y_train, x_test, y_test = digits.load_digits_4bit(8)
    old = digits.load_digits(8)
    np.testing.assert_array_equal(y_train, old[1])
    np.testing.assert_array_equal(y_test, old[3])
    assert x_train.shape == (1497, 8, 8, 3) and x_test.shape == (300, 8, 8, 3) and x_train.dtype == np.uint8
    assert set(np.unique(x_train)) <= {17 * k for k in range(16)} and x_train.max() == 255
    # the model's 4-bit floor gives back the level; the level is the count rescaled to 0..15
    counts, labels = sklearn_counts()
    order = np.random.default_rng(0).permutation(len(counts))
    levels = np.floor(counts[order[:300]] * 15 / 16 + 0.5)  # no count sits on a .5 after rescaling
    np.testing.assert_array_equal(x_test[..., 0] // 16, levels)
    np.testing.assert_array_equal(x_test[..., 1], x_test[..., 2])
    np.testing.assert_array_equal(y_test, labels[order[:300]])


def test_digits_4bit_upsampling_is_bilinear_as_pil():
    counts, _ = sklearn_counts()
    order = np.random.default_rng(0).permutation(len(counts))
    x_test16 = digits.load_digits_4bit(16)[2]
    for i in (0, 1, 299):
        pil = np.asarray(Image.fromarray(counts[order[i]].astype(np.float32), mode="F").resize((16, 16),
                                                                                              Image.BILINEAR))
        level = np.floor(pil.astype(np.float64) * 15 / 16 + 0.5)
        ambiguous = np.abs(pil * 15 / 16 % 1 - 0.5) < 1e-4  # float32 rounding may fall either way there
        assert np.array_equal((x_test16[i, ..., 0] // 17)[~ambiguous], level[~ambiguous])
    # smooth: a 16x16 image is not 2x2 blocks (pixel replication would make every block constant)
    blocks = x_test16[..., 0].reshape(300, 8, 2, 8, 2)
    assert (blocks.max(axis=(2, 4)) != blocks.min(axis=(2, 4))).any(axis=(1, 2)).all()


def test_bilinear_matrix_rows_and_ends():
    w = digits.bilinear_matrix(8, 32)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    ramp = np.arange(8.0)
    out = w @ ramp
    assert out[0] == 0.0 and out[-1] == 7.0 and np.all(np.diff(out) >= 0)  # edges clamped, monotone
    np.testing.assert_allclose(out[2:-2], (np.arange(2, 30) + 0.5) / 4 - 0.5)  # linear inside


def test_to_4bit_rejects_counts_outside_0_16():
    with pytest.raises(ValueError, match=r"\[0, 16\], got \[-1.0, 3.0\]"):
        digits.to_4bit(np.array([-1.0, 3.0]))
    np.testing.assert_array_equal(digits.to_4bit(np.array([0, 8, 16])), [0, 17 * 8, 255])


def test_get_data_digits_4bit():
    data = data_loaders.get_data("digits_4bit", anchor_size=8, dal=0)
    assert (data.problem, data.image_size, data.n_y, data.n_train, data.n_test) == ("digits_4bit", 8, 10, 1497, 300)
    x, y = next(iter(data.train()))
    assert x.shape == (64, 8, 8, 3) and set(np.unique(x.numpy())) <= {17 * k for k in range(16)}
    big = data_loaders.get_data("digits_4bit", image_size=16, anchor_size=16, dal=0)
    np.testing.assert_array_equal(next(iter(big.test()))[0].numpy(), digits.load_digits_4bit(16)[2][:big.local_batch_test])


# --- the judge of bench/quickstart_quality.py ------------------------------------------------------
@pytest.fixture(scope="module")
def judged():
    return quality.reference_figures("digits", 8, 8, n_noise=300, seed=0)


def test_judge_is_confident_and_right_on_real_digits_and_not_on_noise(judged):
    _, figures = judged
    real, noise = figures["real"], figures["noise"]
    assert real["n"] == noise["n"] == 300
    assert real["agreement"] > 0.9  # a linear model on 8x8 digits is about 96% right
    assert real["class_entropy_bits"] > 3.2  # the test set holds every class about equally
    assert real["mean_confidence"] > noise["mean_confidence"] + 0.2
    assert real["confident_share"] > 0.5 > 0.1 > noise["confident_share"]
    assert noise["class_entropy_bits"] < 2.0  # noise collapses onto one or two classes
    assert sum(real["class_histogram"]) == 300 and sum(noise["class_histogram"]) == 300


def test_judge_sees_one_class_when_shown_one_class(judged):
    classifier, _ = judged
    _, _, x_test, y_test = quality.problem_images("digits", 8)
    sevens = quality.judge(classifier, x_test[y_test == 7], y_test[y_test == 7])
    assert sevens["n"] == 34 and sevens["agreement"] >= 0.9
    assert sevens["class_histogram"][7] == round(sevens["agreement"] * 34) and sevens["class_entropy_bits"] < 0.7


def test_features_box_average_any_resolution_back_to_8x8():
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, :4, :8] = 255  # the top-left 4x8 pixels of a 32x32 image are the 8x8 pixel (0, 0) and (0, 1)
    f = quality.to_features(x).reshape(8, 8)
    assert f[0, 0] == f[0, 1] == 1.0 and f.sum() == 2.0
    with pytest.raises(ValueError, match=r"multiple or a divisor of 8, got shape \(1, 12, 12, 3\)"):
        quality.to_features(np.zeros((1, 12, 12, 3), np.uint8))
    np.testing.assert_array_equal(quality.on_output_grid(np.array([0, 15, 16, 255], np.uint8), 4), [0, 0, 16, 240])
