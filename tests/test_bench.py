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
from unittest import mock

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
# A git directory of openai/glow (its main branch at HEAD, e.g. the .git of a clone) to time the original
# release from; the tests that need it are skipped when the variable is unset, as in CI.
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
    # its own process: the allocator bench/memory.py reads (TensorFlow's BFC allocator on the CPU) is chosen
    # when TensorFlow first allocates, which earlier tests in this process have already done
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "memory.py"), "--quick"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
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
    assert set(parts) == {"ops", "parts", "layers", "proposals", "flops"}
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


def _fake_table():
    """Settings and timings where each side's best, its same-library settings and the same-named
    settings all give different ratios, so that a table computing the wrong one is caught."""
    import best_vs_best

    meta = {s["name"]: s for s in best_vs_best.settings("train", ["ours", "original", "tfp"])}
    screened = dict.fromkeys(meta, 9.0)
    screened.update({"ours eigen xla=0 threads=2/1 auto": 1.0, "ours onednn xla=1 threads=default plain": 1.1,
                     "original eigen xla=0 threads=2/1": 2.0, "original onednn xla=0 threads=default": 1.6,
                     "tfp eigen xla=1 threads=default": 3.0, "tfp onednn xla=0 threads=2/1": 3.3})
    return meta, screened


def test_best_vs_best_is_ratio_of_the_fastest_settings():
    """Screening picks each side's fastest setting per kernel library; in a single group of finals the
    best of a side is its fastest finalist there, and the ratio is best over best (not the same setting,
    not the screening's figures)."""
    import best_vs_best

    meta, screened = _fake_table()
    groups = best_vs_best.finals_groups(meta, screened, ["ours", "original", "tfp"], max_live=6)
    finalists = {n for n, t in screened.items() if t < 9}
    assert groups == [sorted(finalists)]
    # the finals disagree with the screening: ours' onednn setting is the faster one there
    final = {"ours eigen xla=0 threads=2/1 auto": 0.50, "ours onednn xla=1 threads=default plain": 0.40,
             "original eigen xla=0 threads=2/1": 0.80, "original onednn xla=0 threads=default": 1.00,
             "tfp eigen xla=1 threads=default": 1.20, "tfp onednn xla=0 threads=2/1": 2.00}
    out = best_vs_best.summarize("train", meta, screened, [final])
    assert out["best"] == {"ours": "ours onednn xla=1 threads=default plain",
                           "original": "original eigen xla=0 threads=2/1", "tfp": "tfp eigen xla=1 threads=default"}
    assert out["vs"]["original"] == pytest.approx(0.80 / 0.40)  # speed: their time / ours, best / best
    assert out["vs"]["tfp"] == pytest.approx(1.20 / 0.40)
    assert out["per_lib"]["eigen"]["original"] == pytest.approx(0.80 / 0.50)
    assert out["per_lib"]["onednn"]["original"] == pytest.approx(1.00 / 0.40)
    # sampling: the ratio is of times (ours / theirs)
    assert best_vs_best.summarize("sample", meta, screened, [final])["vs"]["original"] == pytest.approx(0.40 / 0.80)


def test_best_vs_best_groups_when_finalists_do_not_fit():
    """Too many finalists for the memory: one group per kernel library plus one of the sides' best
    screened settings, and every ratio comes from a group where both settings were timed."""
    import best_vs_best

    meta, screened = _fake_table()
    sides = ["ours", "original"]
    meta = {n: s for n, s in meta.items() if s["side"] in sides}
    screened = {n: t for n, t in screened.items() if n in meta}
    groups = best_vs_best.finals_groups(meta, screened, sides, max_live=2)
    assert groups == [["original eigen xla=0 threads=2/1", "ours eigen xla=0 threads=2/1 auto"],
                      ["original onednn xla=0 threads=default", "ours onednn xla=1 threads=default plain"],
                      ["original onednn xla=0 threads=default", "ours eigen xla=0 threads=2/1 auto"]]
    timed = [{groups[0][0]: 2.0, groups[0][1]: 1.0}, {groups[1][0]: 1.5, groups[1][1]: 1.2},
             {groups[2][0]: 1.8, groups[2][1]: 1.2}]  # each group at its own load
    out = best_vs_best.summarize("train", meta, screened, timed)
    assert out["best"] == {"ours": "ours eigen xla=0 threads=2/1 auto", "original": "original onednn xla=0 threads=default"}
    assert out["vs"]["original"] == pytest.approx(1.8 / 1.2)  # the cross group, not 1.5 / 1.0 across groups
    assert out["per_lib"] == {"eigen": {"original": pytest.approx(2.0)}, "onednn": {"original": pytest.approx(1.25)}}


def test_best_vs_best_goes_on_when_a_worker_dies(capsys):
    import best_vs_best
    import common

    class Dying:
        def __init__(self, name, dies_at):
            self.name, self.error, self.calls, self.dies_at = name, None, 0, dies_at
            self.proc = mock.Mock(poll=lambda: -9)

        def run(self, n, key=None):
            self.calls += 1
            if self.calls == self.dies_at:
                raise BrokenPipeError(32, "Broken pipe")
            return [0.1] * n

    a, b = Dying("ours eigen threads=default", dies_at=2), Dying("original eigen threads=default xla=0", dies_at=0)
    times = best_vs_best.interleave([common.Timed(a, "x"), common.Timed(b, "y")], rounds=3, steps=2)
    assert times == {"x": [0.1, 0.1], "y": [0.1] * 6}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lost: worker 'ours eigen threads=default' died (exit code -9, killed: out of memory?)"]


@pytest.mark.slow
def test_best_vs_best_quick():
    """The real entry point, a tiny model: every setting is timed (the quick workers fit in memory
    together, so in one group), and the summary's best and ratios are those of the run's own figures."""
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("GLOW_ORIGINAL_GIT", None)
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "best_vs_best.py"), "--quick"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert_all_numbers_finite(records)
    for task, unit, n_settings in (("train:quick", "images/s", 8 + 2), ("sample:quick", "ms", 8)):
        final = {r["setting"]: r for r in records if r.get("task") == task and r.get("phase") == "final"}
        assert len(final) == n_settings and {r["group"] for r in final.values()} == {0}
        for r in final.values():
            assert "error" not in r, r
            assert_finite(r, [unit])
        fig = {n: r[unit] for n, r in final.items()}
        better = max if unit == "images/s" else min
        summary = next(r for r in records if r.get("task") == task and r.get("phase") == "summary")
        for side in ("ours", "tfp") if task.startswith("train") else ("ours",):
            mine = {n: v for n, v in fig.items() if n.startswith(side + " ")}
            assert summary["best"][side] == better(mine, key=mine.get)
        if task.startswith("train"):
            ours, tfp = fig[summary["best"]["ours"]], fig[summary["best"]["tfp"]]
            assert summary["vs"]["tfp"] == pytest.approx(ours / tfp)  # images/s: ours best / TFP best
            for lib in ("eigen", "onednn"):
                o = max(v for n, v in fig.items() if n.startswith(f"ours {lib} "))
                t = max(v for n, v in fig.items() if n.startswith(f"tfp {lib} "))
                assert summary["per_lib"][lib]["tfp"] == pytest.approx(o / t)
    assert "best versus best" in proc.stdout


@pytest.mark.slow
def test_sample_speed_names_a_lost_worker_and_measures_the_rest(monkeypatch):
    """A worker killed by SIGKILL (as by the out-of-memory killer; planted with GLOW_BENCH_KILL_WORKER)
    gives one line naming it, the signal and the memory, no traceback, and figures for the others; with
    memory for one worker at a time they are rebuilt every round and still each timed every round."""
    import sample_speed

    monkeypatch.setenv("GLOW_BENCH_KILL_WORKER", "ours make_sampler literal")
    monkeypatch.setattr(sample_speed, "workers_that_fit", lambda peak, available: 0)
    proc, records = run_bench("sample_speed.py", "--quick", "--variants", "ours make_sampler*")
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr.replace("WorkerError", "")
    lost = [ln for ln in proc.stderr.splitlines() if ln.startswith("lost ")]
    assert len(lost) == 1, proc.stderr
    assert lost[0].startswith("lost worker 'ours make_sampler literal' was killed by SIGKILL, probably the "
                              "out-of-memory killer: ") and " GB resident, " in lost[0], lost[0]
    assert "2 workers of about " in proc.stderr and "1 at a time, rebuilt every round" in proc.stderr
    rows = {r["variant"]: r for r in records[1:]}
    assert rows["ours make_sampler literal"]["n_timed"] == 0 and "SIGKILL" in rows["ours make_sampler literal"]["error"]
    assert rows["ours make_sampler"]["n_timed"] == 4 and "error" not in rows["ours make_sampler"]  # 2 rounds x 2
    assert_finite(rows["ours make_sampler"], ["ms", "images_per_s"])


def test_how_a_worker_ended_in_words():
    import signal

    import common

    assert common.describe_exit(-signal.SIGKILL, 8.1e9, 3.2e9) == (
        "was killed by SIGKILL, probably the out-of-memory killer: 8.1 GB resident, 3.2 GB available when it last "
        "answered")
    assert common.describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert common.describe_exit(1, reason="MemoryError: x") == "exited with status 1: MemoryError: x"
    import sample_speed
    assert sample_speed.workers_that_fit(8e9, 20e9) == 2 and sample_speed.workers_that_fit(8e9, 9e9) == 0
    assert sample_speed.workers_that_fit(0, 1e9) > 100  # in-process workers count nothing


def test_profile_flops_count_of_a_convolution_and_its_gradients():
    """profile_step.matmul_flops against the closed form: a 3x3 convolution 5 -> 7 channels on
    [2, 6, 6] (VALID after padding) is 2*2*6*6*7*9*5 FLOPs, each of its two gradients as many;
    a [4, 3] @ [3, 8] matmul 2*4*3*8."""
    import profile_step
    import tensorflow as tf

    @tf.function
    def f(x, w, a, b):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, 1, "VALID")
        return tape.gradient(y, [x, w]), tf.matmul(a, b)

    graph = f.get_concrete_function(tf.TensorSpec([2, 6, 6, 5]), tf.TensorSpec([3, 3, 5, 7]),
                                    tf.TensorSpec([4, 3]), tf.TensorSpec([3, 8])).graph
    flops = profile_step.matmul_flops(profile_step._graph_ops(graph))
    conv = 2 * 2 * 6 * 6 * 7 * 9 * 5
    assert flops == {"Conv2D": conv, "Conv2DBackpropInput": conv, "Conv2DBackpropFilter": conv, "MatMul": 2 * 4 * 3 * 8}


def test_profile_sample_flops_quick():
    """The sampler's FLOPs of the quick model (16 px, 2 levels x 2 steps, width 16, affine, learntop;
    every convolution plain under the tests' "rule" form), in closed form per image: at each flow step
    the 1x1 conv C->C, l_1 3x3 (C/2 + edge) -> 16, l_2 1x1 16 -> 16, l_last 3x3 (16 + edge) -> C; the
    split prior 3x3 (6 + edge) -> 12 at 8x8; learntop's 3x3 (48 + edge) -> 48 at 4x4 runs once per
    call (its input is zeros, broadcast over the batch)."""
    proc, records = run_bench("profile_step.py", "--quick", "--parts", "sample_flops")
    (r,) = [x for x in records if x.get("part") == "sample_flops"]

    def step(hw, c):
        return 2 * hw * (c * c + 9 * (c // 2 + 1) * 16 + 16 * 16 + 9 * 17 * c)

    per_image = 2 * step(64, 12) + 2 * 64 * 12 * 9 * 7 + 2 * step(16, 24)
    assert r["batch"] == 2 and r["flops_per_sample_batch"] == 2 * per_image + 2 * 16 * 48 * 9 * 49
    assert r["sample_ms"] > 0 and r["matmul_peak_flops"] > 0
