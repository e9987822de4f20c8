"""Loading original TF1 checkpoints (names and shapes of openai/glow's graph), refusing ones that do
not fit, and this project's own tf.train.Checkpoint round trip (the actnorms' `initialized` flag)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bijector_checks import perturb
from glow_tf import Glow, GlowConfig, load_original_checkpoint, original_variable_map

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "original_glow")
FOLDERS = sorted(f for f in os.listdir(REFERENCE_DIR) if os.path.isdir(os.path.join(REFERENCE_DIR, f)))


def _hps(folder):
    with open(os.path.join(REFERENCE_DIR, folder, "hps.json")) as f:
        return json.load(f)


def _prefix(folder):
    return os.path.join(REFERENCE_DIR, folder, "model.ckpt")


@pytest.mark.parametrize("folder", FOLDERS)
def test_variable_map_has_the_original_graphs_names_and_shapes(folder):
    """hps.json lists every variable of the original's graph (name -> shape), written by the original."""
    hps = _hps(folder)
    expected = {name.removesuffix(":0"): shape for name, shape in hps["variables"].items()}
    ours = {name: var.shape.as_list() for name, var in original_variable_map(Glow(GlowConfig.from_dict(
        hps, strict=False))).items()}
    assert ours == expected


def test_loaded_model_is_initialised_and_ddi_changes_nothing():
    hps = _hps("affine_invconv")
    glow = load_original_checkpoint(_prefix("affine_invconv"), hps)  # a dict config is accepted too
    assert glow.is_initialized
    before = [v.numpy().copy() for v in glow.variables]
    x = np.random.RandomState(0).randint(0, 256, [4, 8, 8, 3]).astype(np.uint8)
    glow.initialize(x)
    for b, v in zip(before, glow.variables):
        np.testing.assert_array_equal(v.numpy(), b, err_msg=v.name)


def test_polyak_weights_are_loaded_from_the_moving_averages(tmp_path):
    """A checkpoint holding `<name>/ExponentialMovingAverage` next to each weight, as the original's
    Saver wrote them: polyak=True loads the averages, the default the raw weights."""
    hps = _hps("additive_reverse")
    reader = tf.train.load_checkpoint(_prefix("additive_reverse"))
    raw = {n: tf.Variable(reader.get_tensor(n), name=n) for n in reader.get_variable_to_shape_map()}
    averaged = {f"{n}/ExponentialMovingAverage": tf.Variable(v + 1.0) for n, v in raw.items()}
    prefix = str(tmp_path / "model.ckpt")
    # tf.train.Checkpoint stores objects, not TF1 names: write the TF1 layout with raw_ops.SaveV2.
    names = list(raw) + list(averaged)
    tensors = [v.read_value() for v in list(raw.values()) + list(averaged.values())]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    plain = load_original_checkpoint(prefix, hps)
    polyak = load_original_checkpoint(prefix, hps, polyak=True)
    for name, var in original_variable_map(polyak).items():
        np.testing.assert_allclose(var.numpy(), raw[name].numpy() + 1.0, err_msg=name)
        np.testing.assert_allclose(original_variable_map(plain)[name].numpy(), raw[name].numpy(), err_msg=name)


def test_polyak_without_moving_averages_is_refused():
    with pytest.raises(ValueError, match="has no Polyak average 'model/.*/ExponentialMovingAverage'"):
        load_original_checkpoint(_prefix("additive_reverse"), _hps("additive_reverse"), polyak=True)


@pytest.mark.parametrize("change, match", [
    ({"depth": 3}, r"missing: model/0/2/"),
    ({"depth": 1}, r"not in this config: model/0/1/"),
    ({"width": 32}, r"wrong shape: model/0/0/f1/l_1/W: checkpoint \[3, 3, 7, 16\], config \[3, 3, 7, 32\]"),
    ({"flow_permutation": 2}, r"missing: model/0/0/invconv/W"),
    ({"learntop": True}, r"missing: model/prior/p/W"),
    ({"ycond": True}, r"missing: model/prior/y_emb/W"),
    ({"n_levels": 1, "depth": 2}, r"not in this config: .*model/1/0/"),
])
def test_a_checkpoint_that_does_not_fit_the_config_is_refused(change, match):
    hps = {**_hps("additive_reverse"), **change}
    with pytest.raises(ValueError, match=r"does not fit the config .*" + match):
        load_original_checkpoint(_prefix("additive_reverse"), GlowConfig.from_dict(hps, strict=False))


def test_learntop_checkpoint_into_a_config_without_it_is_refused():
    hps = {**_hps("additive_shuffle"), "learntop": False}
    with pytest.raises(ValueError, match=r"not in this config: model/prior/p/W"):
        load_original_checkpoint(_prefix("additive_shuffle"), GlowConfig.from_dict(hps, strict=False))


def test_missing_checkpoint_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no readable TF checkpoint at .*nothing_here"):
        load_original_checkpoint(str(tmp_path / "nothing_here"), GlowConfig(image_size=8, n_levels=2))


def test_checkpoint_round_trip_restores_weights_and_the_initialized_flags(tmp_path):
    config = GlowConfig(image_size=8, n_levels=2, depth=2, width=8, flow_coupling="affine", learntop=True)
    rng = np.random.RandomState(0)
    glow = Glow(config, seed=0)
    glow.initialize(rng.randint(0, 256, [8, 8, 8, 3]).astype(np.uint8))
    perturb(glow, 0.02, seed=1)
    path = tf.train.Checkpoint(model=glow).write(str(tmp_path / "ckpt"))

    restored = Glow(config, seed=1)  # other random weights and shuffles, all actnorms uninitialised
    assert not restored.is_initialized
    tf.train.Checkpoint(model=restored).read(path).assert_consumed()
    assert restored.is_initialized
    restored.initialize(rng.randint(0, 128, [8, 8, 8, 3]).astype(np.uint8))  # other data: must not re-init
    assert len(restored.variables) == len(glow.variables)
    for a, b in zip(glow.variables, restored.variables):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.name)
    x = rng.randint(0, 256, [2, 8, 8, 3]).astype(np.uint8)
    noise = np.full(x.shape, 0.5 / 256, np.float32)
    np.testing.assert_array_equal(restored.objective(x, noise=noise)["bits_x"],
                                  glow.objective(x, noise=noise)["bits_x"])
