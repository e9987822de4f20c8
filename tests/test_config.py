"""GlowConfig: the original's flags, codes, derived shapes, validation and JSON round trip."""
import json

import pytest

from glow_tf import COUPLINGS, PERMUTATIONS, GlowConfig


@pytest.mark.parametrize("value, name", [(0, "reverse"), (1, "shuffle"), (2, "invconv"), ("2", "invconv"),
                                         ("shuffle", "shuffle")])
def test_flow_permutation_accepts_codes_and_names(value, name):
    assert GlowConfig(flow_permutation=value).flow_permutation == name


@pytest.mark.parametrize("value, name", [(0, "additive"), (1, "affine"), ("1", "affine"), ("additive", "additive")])
def test_flow_coupling_accepts_codes_and_names(value, name):
    assert GlowConfig(flow_coupling=value).flow_coupling == name


def test_code_tables_are_the_originals():
    assert PERMUTATIONS == {0: "reverse", 1: "shuffle", 2: "invconv"}
    assert COUPLINGS == {0: "additive", 1: "affine"}


@pytest.mark.parametrize("flag, value", [("flow_permutation", 3), ("flow_permutation", "lu"),
                                         ("flow_permutation", True), ("flow_coupling", 2),
                                         ("flow_coupling", "exp")])
def test_unknown_permutation_or_coupling_is_refused_by_name(flag, value):
    with pytest.raises(ValueError, match=f"{flag}={value!r}; expected one of"):
        GlowConfig(**{flag: value})


def test_image_size_must_be_divisible_by_2_to_the_levels():
    with pytest.raises(ValueError, match=r"image_size=24 is not divisible by 2\*\*n_levels=16"):
        GlowConfig(image_size=24, n_levels=4)
    GlowConfig(image_size=24, n_levels=3)


@pytest.mark.parametrize("kwargs, match", [
    ({"depth": 0}, "depth=0; expected a positive integer"),
    ({"width": 16.0}, "width=16.0; expected a positive integer"),
    ({"n_levels": True}, "n_levels=True; expected a positive integer"),
    ({"n_bits_x": 9}, "n_bits_x=9; expected 1..8"),
    ({"weight_y": -0.1}, "weight_y=-0.1; expected >= 0"),
    ({"lu": True, "flow_permutation": "shuffle"}, "lu=True needs flow_permutation='invconv', got 'shuffle'"),
    ({"lu": True, "flow_permutation": 0}, "lu=True needs flow_permutation='invconv', got 'reverse'"),
])
def test_bad_values_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlowConfig(**kwargs)


def test_shapes_of_the_cifar_and_celeba_configs():
    """The table of docs/original.md#level-shapes."""
    cifar = GlowConfig(image_size=32, n_levels=3)
    assert cifar.level_shapes == [(16, 16, 12), (8, 8, 24), (4, 4, 48)]
    assert cifar.eps_shapes == [(16, 16, 6), (8, 8, 12), (4, 4, 48)]
    assert cifar.top_shape == (4, 4, 48) and cifar.n_dims == 3072 and cifar.n_bins == 256.0
    celeba = GlowConfig(image_size=256, n_levels=6, n_bits_x=5)
    assert celeba.eps_shapes == [(128, 128, 6), (64, 64, 12), (32, 32, 24), (16, 16, 48), (8, 8, 96), (4, 4, 384)]
    assert sum(h * w * c for h, w, c in celeba.eps_shapes) == 256 * 256 * 3 == celeba.n_dims
    assert celeba.n_bins == 32.0


def test_classifier_only_with_ycond_and_positive_weight_y():
    assert GlowConfig(ycond=True, weight_y=0.01).has_classifier
    assert not GlowConfig(ycond=True, weight_y=0.0).has_classifier
    assert not GlowConfig(ycond=False, weight_y=0.01).has_classifier


def test_from_dict_strict_and_lenient():
    hps = {"image_size": 8, "n_levels": 2, "flow_permutation": 2, "n_bins": 256.0, "top_shape": [2, 2, 24]}
    with pytest.raises(ValueError, match=r"unknown GlowConfig fields \['n_bins', 'top_shape'\]"):
        GlowConfig.from_dict(hps)
    config = GlowConfig.from_dict(hps, strict=False)
    assert config.image_size == 8 and config.flow_permutation == "invconv"


def test_save_and_load_round_trip(tmp_path):
    config = GlowConfig(image_size=16, n_levels=2, depth=3, width=24, flow_permutation=1, flow_coupling=1,
                        learntop=True, ycond=True, n_y=10, weight_y=0.01, n_bits_x=5)
    path = tmp_path / "config.json"
    config.save(str(path))
    assert json.loads(path.read_text())["flow_permutation"] == "shuffle"  # stored by name
    assert GlowConfig.load(str(path)) == config
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(FileNotFoundError, match="no Glow config at .*missing.json"):
        GlowConfig.load(str(tmp_path / "missing.json"))
