"""bench/: every benchmark's --quick mode runs and prints finite figures (no timing asserts), plus the
pieces with a truth of their own: the MNIST split, the original-release stand-ins, the proposals' checks."""
import contextlib
import gzip
import importlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
from unittest import mock

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
# A git directory of openai/glow (its main branch at HEAD, e.g. the .git of a clone) to time the original
# release from; the tests that need it are skipped when the variable is unset, as in CI.
ORIGINAL_GIT = os.environ.get("GLOW_ORIGINAL_GIT")
sys.path.insert(0, BENCH)


def run_bench(script, *args, check=True):
    """bench/SCRIPT's main(ARGS) in this process (its worker processes are started as in a real run);
    returns (its output as a CompletedProcess, the JSON records it printed)."""
    module = importlib.import_module(script[:-len(".py")])
    out, err = io.StringIO(), io.StringIO()
    argv = [os.path.join(BENCH, script), *args]  # argparse names the program after argv[0]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), mock.patch.object(sys, "argv", argv):
        try:
            code = module.main(list(args))
        except SystemExit as e:  # argparse's p.error (code 2), or SystemExit(message) as Python reports it
            code = e.code
            if not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
    proc = subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, records


def assert_finite(record, keys):
    for key in keys:
        value = record.get(key)
        assert isinstance(value, (int, float)) and math.isfinite(value), f"{key}={value!r} in {record}"


def assert_all_numbers_finite(records):
    def walk(v):
        if isinstance(v, float):
            assert math.isfinite(v), records
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(records)


@pytest.mark.slow
def test_train_speed_quick():
    proc, records = run_bench("train_speed.py", "--quick")
    assert records[0]["machine"]["nproc"] >= 1
    rows = {r["variant"]: r for r in records[1:]}
    assert set(rows) == {"ours plain jit=0 ckpt=0", "ours plain jit=0 ckpt=1", "ours lu jit=1 ckpt=0",
                         "ours plain jit=0 ckpt=0 literal", "tfp.bijectors.Glow jit=0"}
    for r in rows.values():
        assert "error" not in r, r
        assert_finite(r, ["images_per_s", "ms_per_step", "speed_vs_reference"])
        assert r["n_steps_timed"] == 4
    for name in ("ours plain jit=0 ckpt=0", "ours lu jit=1 ckpt=0"):
        assert_finite(rows[name], ["ratio_vs_tfp"])
    assert rows["ours plain jit=0 ckpt=0"]["traces"] == 1  # the step is traced once, not per call
    # --quick builds in this process only the variants that patch nothing: the literal layers patch glow_tf
    assert {name for name, r in rows.items() if not r.get("in_process")} == {"ours plain jit=0 ckpt=0 literal"}
    assert rows["ours plain jit=0 ckpt=0"]["params"] == rows["ours plain jit=0 ckpt=1"]["params"]
    assert_all_numbers_finite(records)
    assert "Training throughput" in proc.stdout


def test_train_speed_variant_patterns_must_match():
    proc, _ = run_bench("train_speed.py", "--configs", "bench", "--variants", "ours lu*", "nothing*", check=False)
    assert proc.returncode != 0
    assert "'nothing*' matches no variant of the bench configuration" in proc.stderr
    assert "ours lu jit=1 ckpt=1" in proc.stderr  # the names it could have matched


@pytest.mark.slow
def test_sample_speed_quick():
    proc, records = run_bench("sample_speed.py", "--quick")
    rows = {r["variant"]: r for r in records[1:]}
    assert set(rows) == {"ours glow.sample", "ours make_sampler", "ours decode_jit", "ours make_sampler literal"}
    assert {name for name, r in rows.items() if not r.get("in_process")} == {"ours make_sampler literal"}
    for r in rows.values():
        assert "error" not in r, r
        assert_finite(r, ["ms", "images_per_s"])
    assert_all_numbers_finite(records)
    assert "Sampling latency" in proc.stdout


@pytest.mark.slow
def test_memory_quick():
    proc, records = run_bench("memory.py", "--quick")
    rows = records[1:]
    modes = ("checkpoint", "reversible", "store")
    assert sorted((r["depth"], r["backprop"]) for r in rows) == [(d, m) for d in (2, 4, 8) for m in modes]
    for r in rows:
        assert "error" not in r, r
        assert_finite(r, ["step_mb", "act_mb", "opt_mb", "grads_mb", "state_mb", "peak_rss_mb", "rss_before_mb",
                          "step_s", "speed_vs_checkpoint"])
        assert r["peak_rss_mb"] >= r["rss_before_mb"] and r["finite"]
        assert r["grads_mb"] == pytest.approx(4 * r["params"] / 2 ** 20)
        assert r["state_mb"] == pytest.approx(4 * r["grads_mb"])  # weights, m1, m2, Polyak averages
        assert r["act_mb"] > 0 and r["step_mb"] > 0  # the allocator sees the step's tensors
    by = {(r["depth"], r["backprop"]): r for r in rows}
    assert by[(4, "store")]["params"] > by[(2, "store")]["params"] == by[(2, "reversible")]["params"]
    # store keeps every activation, reversible one layer's at a time: exact allocator figures
    assert by[(8, "store")]["act_mb"] > 1.5 * by[(2, "store")]["act_mb"]
    assert by[(8, "reversible")]["act_mb"] < by[(8, "store")]["act_mb"]
    assert_all_numbers_finite(records)


@pytest.mark.slow
def test_learning_quick_learns_on_digits():
    proc, records = run_bench("learning.py", "--quick", "--problem", "digits")
    header, curve = records[0], records[1:]
    assert header["n_train"] == 1497 and header["problem"] == "digits"
    assert [r["step"] for r in curve] == [0, 15, 30]
    for r in curve:
        assert_finite(r, ["test_bits_x"])
    # 30 steps of adamax from the data-dependent init lower the test bits/dim (8.0 -> 7.9 on this seed)
    assert curve[-1]["test_bits_x"] < curve[0]["test_bits_x"]
    assert_all_numbers_finite(records)


@pytest.mark.slow
def test_profile_quick():
    proc, records = run_bench("profile_step.py", "--quick")
    parts = {}
    for r in records[1:]:
        parts.setdefault(r["part"], []).append(r)
    assert set(parts) == {"ops", "parts", "layers", "proposals"}
    ops = [r for r in parts["ops"] if "op" in r]
    assert any("Conv2D" in r["op"] for r in ops)  # Conv2D..., or _MklNativeConv2D... under oneDNN
    assert abs(sum(r["share_of_kernel_time"] for r in ops) - 1) < 0.5  # the top 15 op types
    assert {r["name"] for r in parts["parts"]} >= {"objective (forward)", "whole step (make_train_step)"}
    proposals = {r["name"]: r for r in parts["proposals"]}
    assert proposals["current"].get("in_process") and not proposals["matmul_1x1"].get("in_process")
    proposal = proposals["matmul_1x1"]
    assert proposal["reference_max_abs_err"] < 1e-4  # the original's reference vectors still hold
    assert proposal["grad_max_rel_diff"] < 1e-4
    assert_all_numbers_finite(records)


# --- pieces with their own truth ------------------------------------------------------------------
def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_split_of_t10k_only(tmp_path):
    import learning

    rng = np.random.RandomState(0)
    images = rng.randint(1, 256, size=(50, 28, 28))
    images[:, 0, :] = images[:, :, 0] = 0  # like MNIST: every row and column holds a 0 (np.pad "minimum" pads 0)
    labels = np.arange(50) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    x_train, y_train, x_test, y_test = learning.mnist_split(str(tmp_path), 40, 10)
    assert x_train.shape == (40, 32, 32, 3) and x_test.shape == (10, 32, 32, 3)
    order = np.random.default_rng(0).permutation(50)
    np.testing.assert_array_equal(y_train, labels[order[:40]])
    np.testing.assert_array_equal(y_test, labels[order[40:]])
    # the original's preparation: zero padding of 2 pixels, the grey channel tiled three times
    first = x_train[0]
    np.testing.assert_array_equal(first[2:30, 2:30, 0], images[order[0]])
    assert not first[:2].any() and not first[:, 30:].any()
    np.testing.assert_array_equal(first[..., 0], first[..., 2])
    with pytest.raises(ValueError, match="exceed the 50 t10k images"):
        learning.mnist_split(str(tmp_path), 45, 10)


def test_learning_bad_data_dir_is_one_clear_error(tmp_path):
    proc, _ = run_bench("learning.py", "--data_dir", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]  # argparse: the usage, then one error line
    assert proc.stderr.startswith("usage: learning.py") and message.startswith("learning.py: error: --data_dir ")
    assert "nowhere" in message


def test_original_dir_is_checked(tmp_path):
    import original

    (tmp_path / "model.py").write_text("")
    with pytest.raises(FileNotFoundError, match="lacks tfops.py, optim.py"):
        original.check_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        original.check_dir(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def original_checkout(tmp_path_factory):
    """openai/glow's main branch, checked out from ORIGINAL_GIT with git archive."""
    if not ORIGINAL_GIT:
        pytest.skip("GLOW_ORIGINAL_GIT is not set (a git directory of openai/glow, e.g. a clone's .git)")
    if not os.path.isdir(ORIGINAL_GIT):
        pytest.fail(f"GLOW_ORIGINAL_GIT={ORIGINAL_GIT!r} is not a directory (expected a git directory of openai/glow)")
    archive = subprocess.run(["git", "--git-dir", ORIGINAL_GIT, "archive", "HEAD"], capture_output=True,
                             check=True).stdout
    folder = tmp_path_factory.mktemp("openai_glow")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return str(folder)


@pytest.mark.slow
def test_original_main_branch_is_timed(original_checkout):
    """bench/original.py runs the release as it is on main: m.train(lr) and m.sample(y, eps_std)."""
    for script, name in (("train_speed.py", "original (TF1 graph, adamax)"),
                         ("sample_speed.py", "original (TF1 graph, m.sample)")):
        _, records = run_bench(script, "--quick", "--original_dir", original_checkout, "--variants", "original*")
        rows = {r["variant"]: r for r in records[1:]}
        assert name in rows, f"{script}: no {name!r} row in {sorted(rows)}"
        assert "error" not in rows[name], rows[name]
        assert_finite(rows[name], ["images_per_s"])


def test_arg_scope_stand_in_matches_tf_slim_semantics():
    import original

    @original.add_arg_scope
    def f(a, init=False, trainable=True):
        return a, init, trainable

    assert f(1) == (1, False, True)
    with original.arg_scope([f], init=True):
        assert f(1) == (1, True, True)
        assert f(1, init=False) == (1, False, True)  # an explicit argument wins
        with original.arg_scope([f], trainable=False):
            assert f(2) == (2, True, False)  # nested scopes merge
        assert f(3) == (3, True, True)
    assert f(4) == (4, False, True)
    # tfops.actnorm tests a scope object for truth without entering it; that must not apply the scope
    assert original.arg_scope([f], init=True) and f(5) == (5, False, True)


def test_unknown_proposal_is_refused():
    import proposals

    with pytest.raises(ValueError, match="unknown proposal"):
        proposals.apply(["make_it_fast"])
