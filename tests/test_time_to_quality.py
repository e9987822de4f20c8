"""bench/time_to_quality.py: the figures it derives (time to reach a bits/dim, differences at equal steps,
the batch-hash check), the batch order both sides share, its one-line errors, and a --quick run of both
sides through the real entry point (the original from $GLOW_ORIGINAL_GIT, skipped when unset)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "bench", "time_to_quality.py")
sys.path.insert(0, os.path.join(REPO, "bench"))

import time_to_quality as ttq  # noqa: E402


def curve(*pairs, clock="train_s"):
    return [{"step": 10 * i, clock: t, "test_bits_x": b} for i, (t, b) in enumerate(pairs)]


def test_time_to_reach_interpolates_between_evaluations():
    points = curve((0.0, 8.0), (10.0, 6.0), (20.0, 5.0), (30.0, 4.0))
    assert ttq.time_to_reach(points, 5.5) == pytest.approx(15.0)  # half way from 6.0 at 10 s to 5.0 at 20 s
    assert ttq.time_to_reach(points, 4.25) == pytest.approx(27.5)
    assert ttq.time_to_reach(points, 5.0) == pytest.approx(20.0)  # reached exactly at an evaluation
    assert ttq.time_to_reach(points, 9.0) == 0.0  # already there at the start
    assert ttq.time_to_reach(points, 3.9) is None  # never reached


def test_time_to_reach_takes_the_first_crossing_and_the_asked_clock():
    # down to 4.9 at 20 s, back up, down again: the first time at or below 5.0 counts
    points = curve((0.0, 8.0), (10.0, 6.0), (20.0, 4.9), (30.0, 5.2), (40.0, 4.0))
    assert ttq.time_to_reach(points, 5.0) == pytest.approx(10.0 + 10.0 * 1.0 / 1.1)
    cpu = [dict(p, train_cpu_s=2 * p["train_s"]) for p in points]
    assert ttq.time_to_reach(cpu, 5.0, "train_cpu_s") == pytest.approx(2 * (10.0 + 10.0 / 1.1))


def planted_result():
    h = ["a", "b", "c", "d"]
    original = [{"step": s, "train_s": t, "train_cpu_s": 2 * t, "test_bits_x": b, "batches_sha256": x}
                for s, t, b, x in zip((0, 100, 200, 300), (0.0, 20.0, 40.0, 60.0), (8.0, 6.0, 5.0, 4.5), h)]
    ours = [{"step": s, "train_s": t, "train_cpu_s": 2 * t, "test_bits_x": b, "batches_sha256": x}
            for s, t, b, x in zip((0, 100, 200, 300, 400), (0.0, 10.0, 20.0, 30.0, 40.0),
                                  (8.001, 6.02, 4.96, 4.52, 4.3), h + ["e"])]
    side = {"build_s": 1.0, "first_step_s": 2.0, "first_step_cpu_s": 3.0}
    return {"sides": {"original": {**side, "points": original, "steps": 301, "train_s": 60.0, "train_cpu_s": 120.0},
                      "ours": {**side, "points": ours, "steps": 401, "train_s": 40.0, "train_cpu_s": 80.0}}}


def test_summary_on_planted_curves():
    s = ttq.summarize(planted_result())
    assert s["original_steps_per_s"] == pytest.approx(300 / 60) and s["ours_steps_per_s"] == pytest.approx(400 / 40)
    assert s["speed_ratio_wall"] == pytest.approx(2.0) and s["speed_ratio_cpu"] == pytest.approx(2.0)
    assert s["target_test_bits_x"] == 4.5 and s["original_reach_s"] == 60.0
    # ours: 4.96 at 20 s, 4.52 at 30 s, 4.3 at 40 s -> 4.5 is crossed between 30 s and 40 s
    assert s["ours_reach_s"] == pytest.approx(30.0 + 10.0 * 0.02 / 0.22)
    assert s["reach_ratio_s"] == pytest.approx(60.0 / s["ours_reach_s"])
    assert s["reach_ratio_cpu_s"] == pytest.approx(s["reach_ratio_s"])
    assert s["equal_steps_compared"] == 4  # step 400 has no partner
    assert s["equal_steps_max_abs_diff"] == pytest.approx(0.04) and s["step0_diff"] == pytest.approx(0.001)
    assert s["same_batches"] is True and s["batch_hashes_compared"] == 4


def test_a_different_batch_is_caught():
    result = planted_result()
    result["sides"]["ours"]["points"][2]["batches_sha256"] = "other"
    assert ttq.summarize(result)["same_batches"] is False


def test_batch_stream_is_a_permutation_per_epoch_and_the_same_for_the_same_seed():
    a, b = ttq.BatchStream(10, 4, seed=3), ttq.BatchStream(10, 4, seed=3)
    batches = [a.indices(k) for k in range(5)]  # 20 positions: epochs 0 and 1, batch 2 straddles them
    assert all(np.array_equal(x, b.indices(k)) for k, x in enumerate(batches))
    stream = np.concatenate(batches)
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])  # a fresh permutation each epoch
    assert np.array_equal(a.indices(1), b.indices(1))  # asked again, out of order: the same
    other = np.concatenate([ttq.BatchStream(10, 4, seed=4).indices(k) for k in range(5)])
    assert not np.array_equal(stream, other)


def test_fixed_subsets_and_warmup():
    e = ttq.eval_indices(100, 20, seed=0)
    assert len(set(e)) == 20 and np.array_equal(e, ttq.eval_indices(100, 20, seed=0)) and e.max() < 100
    i = ttq.init_indices(100, 16, seed=0)
    assert len(set(i)) == 16 and np.array_equal(i, ttq.init_indices(100, 16, seed=0))
    from glow_tf.optim import warmup_lr

    # the original side's rate (its train.py written out) is the one glow_tf computes for ours
    for n in (0, 32, 5000, 9984, 10016, 50000):
        assert ttq.warmup_lr_original(1e-3, n, 10000) == pytest.approx(warmup_lr(1e-3, n, 10000), abs=0)


def write_images(root, n_train, n_test, size=8, seed=0):
    """train/ and test/ folders of random PNGs in two class folders (the CIFAR-10-images layout)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            folder = os.path.join(root, split, ("cat", "dog")[i % 2])
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                os.path.join(folder, f"{i:04d}.png"))


def run_script(*args, env=None):
    clean = {k: v for k, v in os.environ.items() if k not in (ttq.ENV_DATA, ttq.ENV_ORIGINAL)}
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=REPO,
                          env={**clean, **(env or {})}, timeout=900)


def one_line_error(proc):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_without_the_original_one_clear_line(tmp_path):
    write_images(tmp_path, 4, 2)
    line = one_line_error(run_script("--quick", "--data_dir", str(tmp_path)))
    assert "--original_dir" in line and ttq.ENV_ORIGINAL in line and "openai/glow" in line
    (tmp_path / "glow").mkdir()
    (tmp_path / "glow" / "model.py").write_text("")
    line = one_line_error(run_script("--quick", "--data_dir", str(tmp_path), "--original_dir", str(tmp_path / "glow")))
    assert "lacks tfops.py, optim.py" in line


def test_bad_data_folder_one_clear_line(tmp_path):
    glow = tmp_path / "glow"
    glow.mkdir()
    for name in ("model.py", "tfops.py", "optim.py"):
        (glow / name).write_text("")
    line = one_line_error(run_script("--quick", "--original_dir", str(glow)))
    assert "--data_dir" in line and ttq.ENV_DATA in line
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    line = one_line_error(run_script("--quick", "--data_dir", str(tmp_path / "data"), "--original_dir", str(glow)))
    assert "has no test/ folder" in line
    line = one_line_error(run_script("--quick", "--data_dir", str(tmp_path), "--original_dir", str(glow),
                                     "--budget", "0"))
    assert "--budget 0.0: expected a positive number of seconds" in line


@pytest.mark.slow
def test_quick_run_of_both_sides(tmp_path, original_checkout):
    """Both sides from the same weights on the same batches: equal test bits/dim at step 0 (up to the
    dequantisation noise, which each side draws itself), equal batch hashes, the outputs written."""
    data, cache, out = tmp_path / "data", tmp_path / "cache", tmp_path / "out"
    write_images(data, 40, 12)
    proc = run_script("--quick", "--data_dir", str(data), "--cache_dir", str(cache), "--out_dir", str(out),
                      "--original_dir", original_checkout, "--n_eval", "10", "--eval_batch", "4", "--batch", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(cache)) == ["time_to_quality_test_8px.json", "time_to_quality_test_8px.npy",
                                         "time_to_quality_train_8px.json", "time_to_quality_train_8px.npy"]
    result = json.loads((out / "points.json").read_text())
    s = result["summary"]
    for side in ttq.SIDES:
        points = result["sides"][side]["points"]
        assert points[0]["step"] == 0 and points[0]["train_s"] == 0.0 and len(points) >= 2
        assert [p["step"] for p in points] == sorted({p["step"] for p in points})
        assert s[f"{side}_steps"] >= 2 and s[f"{side}_steps_per_s"] > 0
    # the same starting weights: at step 0 the two differ by the dequantisation noise alone (1e-5 here; a
    # model started from its own weights is 1e-2 away), and the same batches on both sides
    assert abs(s["step0_diff"]) < 1e-3, s
    assert s["same_batches"] is True and s["batch_hashes_compared"] >= 2
    assert s["target_test_bits_x"] == result["sides"]["original"]["points"][-1]["test_bits_x"]
    assert s["original_reach_s"] is not None
    with Image.open(out / "time_to_quality.png") as png:
        assert png.size == (1500, 640)
    rows = (out / "points.csv").read_text().splitlines()
    assert rows[0].startswith("side,step,") and len(rows) == 1 + sum(len(result["sides"][k]["points"]) for k in ttq.SIDES)
    assert "ours / original steps/s" in proc.stdout and "same batches on both sides: True" in proc.stdout
