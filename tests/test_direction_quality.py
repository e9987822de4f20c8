"""bench/direction_quality.py: the measure of whether attribute directions do what they say.

On drawn images where an attribute is a planted pixel feature (a redder face), the measure must
report it: directions found through a small Glow move the red channel by 1.6 times the planted
contrast and leave green and blue, and the judge's probability rises at +1 and falls at -1; a zero direction must report no change
at all, and a judge trained on shuffled labels must not score like a real one. The whole script runs on
a folder in CelebA's layout with the attribute planted as Smiling.
"""
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import glow_tf
from data_loaders import celeba
from glow_tf import checkpoint
from glow_tf.directions import CELEBA_ATTRIBUTES, DEMO_SCALE

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import direction_quality as dq  # noqa: E402

SIZE = 16
CONTRAST = 40  # the planted feature: the red channel is CONTRAST levels higher (edges unchanged, so the
#               judge's HOG alone cannot see it, its colour features can, and a redder face is not a bluer one)


def drawn_faces(n, rng):
    """(uint8 [n, 16, 16, 3], labels [n, 1] of +1/-1): smooth random colour fields between 60 and 140,
    with red CONTRAST levels higher on the +1 half."""
    small = rng.uniform(60, 140, size=(n, 4, 4, 3))
    images = np.stack([np.asarray(Image.fromarray(s.astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR))
                       for s in small]).astype(np.int32)
    labels = np.where(np.arange(n) % 2 == 0, 1, -1)[rng.permutation(n)]
    images[labels == 1, ..., 0] += CONTRAST
    return images.astype(np.uint8), labels[:, None]


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    x_dir, y_dir = drawn_faces(256, rng)
    x_judge, y_judge = drawn_faces(200, rng)
    x_test, y_test = drawn_faces(100, rng)
    config = glow_tf.GlowConfig(image_size=SIZE, n_levels=2, depth=2, width=8, flow_coupling="additive",
                                learntop=True, n_bits_x=5)
    glow = glow_tf.Glow(config, seed=0)
    glow.initialize(x_dir[:64])
    dirs, n_with, n_without = dq.find_directions(glow, [(x_dir[a:a + 64], y_dir[a:a + 64])
                                                        for a in range(0, 256, 64)], ["patch"])
    feats = dq.features(dq.on_output_grid(x_judge, config.n_bits_x))
    judges = dq.fit_judges(feats, y_judge, ["patch"])
    return dict(glow=glow, dirs=dirs, n_with=n_with, n_without=n_without, judges=judges, x_test=x_test,
                y_test=y_test, x_judge=x_judge, y_judge=y_judge)


def test_directions_move_the_planted_feature(planted):
    glow, d, x = planted["glow"], planted["dirs"][0], planted["x_test"]
    assert (planted["n_with"][0], planted["n_without"][0]) == (128, 128)
    z = glow.encode(x, noise="centre")
    moved = glow.manipulate(z, d, [-1.0, 0.0, 1.0]).astype(np.float64)  # [N, 3, H, W, C]
    np.testing.assert_array_equal(moved[:, 1], dq.on_output_grid(x, 5))  # alpha 0: the image on the model's levels
    for alpha in (0, 2):  # alpha -1 and +1
        change = (moved[:, alpha] - moved[:, 1]).mean(axis=(0, 1, 2))  # per channel
        red = DEMO_SCALE * CONTRAST * (alpha - 1)  # 1.6 x the planted contrast, on 5-bit steps of 8
        np.testing.assert_allclose(change, [red, 0, 0], atol=6)


def test_measure_reports_the_planted_direction_and_nothing_for_a_zero_one(planted):
    judges = {"patch": planted["judges"]["patch"], "zero": planted["judges"]["patch"]}
    dirs = np.stack([planted["dirs"][0], np.zeros_like(planted["dirs"][0])])
    effect = dq.manipulation_effect(planted["glow"], judges, ["patch", "zero"], planted["x_test"], dirs)
    p_minus, p_zero, p_plus = effect[:, 0]
    assert 0.35 < p_zero < 0.65, effect  # half the test images have the square
    assert p_plus > p_zero + 0.3 and p_minus < p_zero - 0.3, effect
    np.testing.assert_array_equal(effect[:, 1], [p_zero] * 3)  # a zero direction changes nothing
    negated = dq.manipulation_effect(planted["glow"], judges, ["patch"], planted["x_test"], -dirs[:1])
    np.testing.assert_allclose(negated[:, 0], effect[::-1, 0], atol=1e-9)  # -d at +1 is d at -1


def test_judge_scores_know_a_real_judge_from_a_blind_one(planted):
    feats = dq.features(dq.on_output_grid(planted["x_test"], 5))
    (acc, auc), = dq.judge_scores(planted["judges"], feats, planted["y_test"], ["patch"]).values()
    assert acc > 0.9 and auc > 0.97, (acc, auc)
    shuffled = np.random.default_rng(1).permutation(planted["y_judge"])
    blind = dq.fit_judges(dq.features(dq.on_output_grid(planted["x_judge"], 5)), shuffled, ["patch"])
    (acc, auc), = dq.judge_scores(blind, feats, planted["y_test"], ["patch"]).values()
    assert auc < 0.7, auc


def test_judges_need_both_kinds_of_face():
    with pytest.raises(ValueError, match="'Smiling'.*all without it"):
        dq.fit_judges(np.zeros((4, 3)), -np.ones((4, 1)), ["Smiling"])


def test_the_script_on_a_celeba_folder(tmp_path, capsys):
    """main() on a folder in the release's layout (half-size JPEGs) where Smiling is a redder image, and an initialised run trained on it by name (train.txt's data_dir)."""
    rng = np.random.default_rng(2)
    n = 160
    labels = rng.choice([-1, 1], size=(n, 40)).astype(np.int8)
    smiling = CELEBA_ATTRIBUTES.index("Smiling")
    small = rng.uniform(60, 140, size=(n, 4, 4, 3)).astype(np.uint8)
    root = tmp_path / "celeba"
    (root / celeba.IMAGE_DIR).mkdir(parents=True)
    for i in range(n):
        image = np.asarray(Image.fromarray(small[i]).resize((89, 109), Image.BILINEAR)).astype(np.int32)
        if labels[i, smiling] == 1:
            image[..., 0] += CONTRAST
        Image.fromarray(image.astype(np.uint8)).save(root / celeba.IMAGE_DIR / f"{i + 1:06d}.jpg", quality=95)
    rows = [str(n), " ".join(CELEBA_ATTRIBUTES)] + [f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in labels[i])
                                                    for i in range(n)]
    (root / celeba.ATTRIBUTE_FILE).write_text("\n".join(rows) + "\n")

    run = tmp_path / "run"
    config = glow_tf.GlowConfig(image_size=SIZE, n_levels=2, depth=2, width=8, flow_coupling="additive",
                                learntop=True, n_bits_x=5)
    glow = glow_tf.Glow(config, seed=0)
    folder = celeba.CelebAFolder(str(root))
    glow.initialize(folder.load(folder.split_files("train")[0][:64], SIZE))
    config.save(str(run / "config.json"))
    prefix = tf.train.CheckpointManager(tf.train.Checkpoint(model=glow), str(run / "checkpoints"), 1).save()
    checkpoint.write_manifest(prefix)
    (run / "train.txt").write_text(json.dumps({"problem": "celeba", "data_dir": str(root)}) + "\n")

    out = tmp_path / "quality.json"
    assert dq.main(["--logdir", str(run), "--attr", "Smiling", "Male", "--n_directions", "80", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "80 for the directions, 64 for the judges, 16 held out" in printed
    summary = json.loads(out.read_text())
    smile, male = summary["results"]
    assert smile["attribute"] == "Smiling" and male["attribute"] == "Male"
    n_test_with = int((labels[144:, smiling] == 1).sum())
    assert (smile["n_test"], smile["n_test_with"]) == (16, n_test_with)
    assert smile["n_directions_with"] + smile["n_directions_without"] == 80
    assert smile["n_directions_with"] == int((labels[:80, smiling] == 1).sum())
    assert smile["judge_auc"] > 0.95
    assert smile["p_plus"] > smile["p_zero"] + 0.2 and smile["p_minus"] < smile["p_zero"] - 0.2, smile


def test_the_script_refuses_a_split_with_no_judge_faces(tmp_path, capsys):
    root = tmp_path / "celeba"
    (root / celeba.IMAGE_DIR).mkdir(parents=True)
    for i in range(10):
        Image.fromarray(np.full((109, 89, 3), 100, np.uint8)).save(root / celeba.IMAGE_DIR / f"{i + 1:06d}.jpg")
    rows = ["10", " ".join(CELEBA_ATTRIBUTES)] + [f"{i + 1:06d}.jpg " + " ".join(["-1"] * 40) for i in range(10)]
    (root / celeba.ATTRIBUTE_FILE).write_text("\n".join(rows) + "\n")
    with pytest.raises(SystemExit) as e:
        dq.main(["--logdir", str(tmp_path), "--celeba", str(root), "--n_directions", "9"])
    assert e.value.code == 2
    assert "--n_directions 9: expected between 1 and 8" in capsys.readouterr().err
