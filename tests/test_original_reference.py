"""The port against reference vectors produced by the original openai/glow code (see
tests/fixtures/original_glow/README.md): one test set per folder found at collection time.

Set GLOW_REFERENCE_DIR to a folder of further reference sets in the same format (one sub-folder
each with hps.json, model.ckpt.* and reference.npz) to run them instead of the bundled ones.
"""
import json
import os

import numpy as np
import pytest

import glow_tf
from glow_tf import GlowConfig

ROOT = os.environ.get("GLOW_REFERENCE_DIR", os.path.join(os.path.dirname(__file__), "fixtures", "original_glow"))
FOLDERS = sorted(d for d in (os.listdir(ROOT) if os.path.isdir(ROOT) else [])
                 if os.path.exists(os.path.join(ROOT, d, "hps.json")))
ATOL = 1e-4  # the tolerance the reference README asks of a float32 port


def test_reference_sets_were_found():
    assert FOLDERS, f"no reference sets (sub-folders with hps.json) in {ROOT!r}; check GLOW_REFERENCE_DIR"


@pytest.fixture(scope="module", params=FOLDERS)
def case(request):
    """(model loaded from the original checkpoint, reference arrays, labels or None)."""
    folder = os.path.join(ROOT, request.param)
    with open(os.path.join(folder, "hps.json")) as f:
        hps = json.load(f)
    config = GlowConfig.from_dict(hps, strict=False)
    glow = glow_tf.load_original_checkpoint(os.path.join(folder, "model.ckpt"), config)
    ref = dict(np.load(os.path.join(folder, "reference.npz")))
    return glow, ref, ref["y"] if config.ycond else None


def test_bits_x(case):
    glow, ref, y = case
    out = glow.objective(ref["x"], y, noise=ref["noise"])
    np.testing.assert_allclose(out["bits_x"], ref["bits_x"], atol=ATOL)


def test_eps(case):
    glow, ref, y = case
    eps = glow.unflatten(glow.encode(ref["x"], y, noise=ref["noise"]))
    assert len(eps) == glow.config.n_levels
    for i, e in enumerate(eps):
        np.testing.assert_allclose(e, ref[f"eps_{i}"], atol=ATOL, err_msg=f"eps_{i}")


def test_decoded(case):
    glow, ref, y = case
    eps = [ref[f"eps_{i}"] for i in range(glow.config.n_levels)]
    np.testing.assert_allclose(glow.decode(eps, y, postprocess=False) + 0.5, ref["decoded"], atol=ATOL)  # ref is +0.5


def test_decoded_at_temperature(case):
    glow, ref, y = case
    x = glow.decode(float(ref["temperature"]) * ref["eps_T"], y, postprocess=False)  # flat eps, levels in order
    np.testing.assert_allclose(x + 0.5, ref["decoded_T"], atol=ATOL)


def test_classifier_logits(case):
    """The head exists exactly when the original built one (ycond and weight_y > 0), and agrees."""
    glow, ref, y = case
    out = glow.objective(ref["x"], y, noise=ref["noise"])
    assert ("y_logits" in out) == ("y_logits" in ref)
    if "y_logits" in ref:
        np.testing.assert_allclose(out["y_logits"], ref["y_logits"], atol=ATOL)
