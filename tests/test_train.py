"""train.py end to end on scikit-learn's digits: outputs, learning, exact resume after SIGKILL, errors.

Runs call train.main in this process; only the SIGKILL test starts train.py as a program (a process
has to die), and one run checks the console a user sees."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}

# A tiny model (configs/tiny.py): 4 steps per epoch (256 anchored images / 64), so epochs are short.
TINY = ["--config", "tiny"]


def run_train(args):
    """train.main(args) in this process (it returns the trained model)."""
    import train  # noqa: PLC0415
    return train.main(list(args))


def train_error(args, capsys):
    """The one message train.py stops with for `args` (argparse's or train.py's own)."""
    import train  # noqa: PLC0415
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        train.main(list(args))
    code = stopped.value.code
    return (code if isinstance(code, str) else "") + capsys.readouterr().err


def read_jsonl(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    return lines[0], lines[1:]


def final_weights(logdir):
    prefix = tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints"))
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith(("model/", "optimizer/", "progress/")) and "OBJECT_GRAPH" not in n)
    return {n: reader.get_tensor(n) for n in names}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("uninterrupted"))
    run_train([*TINY, "--epochs", "9", "--logdir", logdir])
    return logdir


def test_outputs_of_a_run(uninterrupted):
    files = set(os.listdir(uninterrupted))
    assert {"config.json", "train.txt", "test.txt", "checkpoints", "best", "tensorboard"} <= files
    # samples at the original's 8 temperatures on epochs 1 and multiples of --epochs_full_sample
    for epoch in (1, 3, 6):
        for i in range(8):
            assert f"epoch_{epoch}_sample_{i}.png" in files
    hps, train = read_jsonl(os.path.join(uninterrupted, "train.txt"))
    assert hps["problem"] == "digits" and hps["train_its"] == 4 and hps["n_bins"] == 256.0
    assert [int(r["epoch"]) for r in train] == list(range(1, 9))
    for r in train:  # the original's keys, values as 4-decimal strings
        assert {"epoch", "n_processed", "n_images", "train_time", "loss", "bits_x", "bits_y", "pred_loss"} <= set(r)
        assert r["bits_x"] == f"{float(r['bits_x']):.4f}"
    _, test = read_jsonl(os.path.join(uninterrupted, "test.txt"))
    assert [int(r["epoch"]) for r in test] == [0, 2, 4, 6, 8]
    assert os.listdir(os.path.join(uninterrupted, "tensorboard"))
    assert tf.train.latest_checkpoint(os.path.join(uninterrupted, "best"))
    with open(os.path.join(uninterrupted, "checkpoints", "config.json")) as f:
        assert json.load(f)["depth"] == 2


def test_exact_resume_after_sigkill(uninterrupted, tmp_path):
    """Kill -9 after the checkpoint at step 12 (epoch 3), resume to the end: same weights, same logs."""
    logdir = str(tmp_path / "killed")
    out, err = open(tmp_path / "stdout", "w"), open(tmp_path / "stderr", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *TINY, "--epochs", "9",
                             "--logdir", logdir], env=ENV, cwd=REPO, stdout=out, stderr=err)
    state_file = os.path.join(logdir, "checkpoints", "checkpoint")
    deadline = time.time() + 300
    while time.time() < deadline:
        if os.path.exists(state_file) and "ckpt-12" in open(state_file).read():
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out.close(), err.close()
    # What the user saw until then: labelled lines (the first test right after the init, then train
    # epochs), and nothing on stderr.
    console = (tmp_path / "stdout").read_text()
    assert "epoch    0 test  | loss " in console and "epoch    1 train | loss " in console, console
    assert (tmp_path / "stderr").read_text() == ""
    assert tf.train.latest_checkpoint(os.path.join(logdir, "checkpoints")), "no checkpoint survived the kill"

    run_train([*TINY, "--epochs", "9", "--logdir", logdir, "--restore_path", logdir])

    expected, actual = final_weights(uninterrupted), final_weights(logdir)
    assert expected.keys() == actual.keys()
    for name in expected:
        if name.startswith("progress/train_time"):
            continue
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6, err_msg=name)
    for log in ("train.txt", "test.txt"):
        _, want = read_jsonl(os.path.join(uninterrupted, log))
        _, got = read_jsonl(os.path.join(logdir, log))
        strip = lambda rows: [{k: v for k, v in r.items() if k != "train_time"} for r in rows]  # noqa: E731
        assert strip(got) == strip(want), log


def test_training_lowers_test_bits(uninterrupted):
    _, test = read_jsonl(os.path.join(uninterrupted, "test.txt"))
    after_init, last = float(test[0]["bits_x"]), float(test[-1]["bits_x"])
    assert last < after_init - 1.0, (after_init, last)


def test_inference_writes_latents_and_reconstructions(uninterrupted, tmp_path):
    out = str(tmp_path / "infer")
    run_train([*TINY, "--epochs", "9", "--logdir", out, "--restore_path", uninterrupted, "--inference"])
    z, x, y = (np.load(os.path.join(out, f"{k}.npy")) for k in "zxy")
    assert z.shape == (len(x), 8 * 8 * 3) and x.dtype == np.uint8 and len(y) == len(x)
    import data_loaders
    data = data_loaders.get_data("digits", anchor_size=8, dal=0, seed=3)
    originals = np.concatenate([np.asarray(b[0]) for b in data.test()])
    # The reconstructions are the test images: encoding adds U(0, 1/256) noise as the original does,
    # and postprocess floors it away; only float round-off at a bin edge may flip a value by one.
    diff = np.abs(x.astype(int) - originals.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


@pytest.mark.parametrize("args, message", [
    (["--problem", "nosuch"], "unknown problem 'nosuch'"),
    (["--image_size", "12"], "--image_size 12: expected a power of two"),
    (["--n_levels", "4"], "image_size=8 is not divisible by 2**n_levels=16"),
    (["--restore_path", "/nonexistent/run"], "no checkpoint at '/nonexistent/run'"),
    (["--flow_permutation", "7"], "flow_permutation=7"),
    (["--inference"], "--inference needs --restore_path"),
    (["--problem", "folder", "--data_dir", "/nonexistent/images"], "/nonexistent/images"),
])
def test_bad_input_gets_one_clear_error(tmp_path, args, message, capsys):
    # Any exception other than SystemExit (a traceback for the user) fails the test.
    assert message in train_error([*TINY, "--epochs", "2", "--logdir", str(tmp_path / "bad"), *args], capsys)


def test_restore_path_that_does_not_fit_the_flags(uninterrupted, tmp_path, capsys):
    error = train_error([*TINY, "--epochs", "2", "--depth", "3", "--logdir", str(tmp_path / "x"),
                         "--restore_path", uninterrupted], capsys)
    assert "depth is 2 in the checkpoint but 3 here" in error


def test_refuses_to_overwrite_a_run(uninterrupted, capsys):
    assert "already holds a run" in train_error([*TINY, "--epochs", "2", "--logdir", uninterrupted], capsys)


def test_original_tf1_checkpoint_restores_and_fine_tunes(tmp_path, capsys):
    """--restore_path with an original release's checkpoint (the reference additive_reverse, 8x8 RGB)."""
    ref = os.path.join(REPO, "tests", "fixtures", "original_glow", "additive_reverse")
    with open(os.path.join(ref, "hps.json")) as f:
        hps = json.load(f)
    args = ["--problem", "digits", "--dal", "0", "--anchor_size", "8", "--n_train", "128", "--epochs", "2",
            "--n_levels", str(hps["n_levels"]), "--depth", str(hps["depth"]), "--width", str(hps["width"]),
            "--flow_permutation", "0", "--flow_coupling", "0", "--gradient_checkpointing", "0",
            "--logdir", str(tmp_path / "ft"), "--restore_path", os.path.join(ref, "model.ckpt")]
    run_train(args)
    _, test = read_jsonl(str(tmp_path / "ft" / "test.txt"))
    assert np.isfinite(float(test[0]["bits_x"]))
    wrong = train_error([*args[:-4], "--logdir", str(tmp_path / "w"), "--learntop", "--restore_path",
                         os.path.join(ref, "model.ckpt")], capsys)
    assert "does not fit the config" in wrong


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(uninterrupted, tmp_path, capsys):
    """An absurd learning rate blows the weights up after one step: every later step has a non-finite
    loss or gradient, is skipped and counted, and the run stops after --max_nonfinite_steps in a row."""
    logdir = str(tmp_path / "nonfinite")
    error = train_error([*TINY, "--epochs", "12", "--logdir", logdir, "--restore_path", uninterrupted,
                         "--lr", "1e30", "--max_nonfinite_steps", "6"], capsys)
    # resumed at step 32 (8 epochs of 4): step 33 updates, 34-36 are skipped in epoch 9, 37-39 in epoch 10
    assert "stopped at step 39 (epoch 10): 6 consecutive steps had a non-finite loss" in error
    _, train = read_jsonl(os.path.join(logdir, "train.txt"))
    assert [(int(r["epoch"]), r["n_skipped"]) for r in train] == [(9, 3)]
    assert np.isfinite(float(train[0]["bits_x"]))  # the mean of the finite steps only
    # the checkpoint of epoch 9 holds no NaN or Inf: skipped steps never touch the weights
    for name, value in final_weights(logdir).items():
        if value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_use_ema_evaluates_with_the_averages_and_trains_with_the_raw_weights(tmp_path):
    """--use_ema 1 changes what is evaluated (the Polyak averages), never what is trained."""
    runs = {}
    for use_ema in ("0", "1"):
        logdir = str(tmp_path / f"ema{use_ema}")
        run_train([*TINY, "--epochs", "3", "--logdir", logdir, "--use_ema", use_ema])
        runs[use_ema] = (read_jsonl(os.path.join(logdir, "train.txt"))[1],
                         read_jsonl(os.path.join(logdir, "test.txt"))[1], final_weights(logdir))
    (train0, test0, weights0), (train1, test1, weights1) = runs["0"], runs["1"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "train_time"} for r in rows]  # noqa: E731
    assert strip(train1) == strip(train0)
    for name in weights0:  # the raw weights are back after each evaluation: training is unchanged
        if not name.startswith(("progress/train_time", "progress/best_test_loss")):
            np.testing.assert_array_equal(weights1[name], weights0[name], err_msg=name)
    assert test1[0] == test0[0]  # epoch 0 (after init) is evaluated before any averaging
    assert test1[1]["bits_x"] != test0[1]["bits_x"]  # epoch 2: the averages are not the raw weights


def test_config_sets_defaults_and_flags_override_it(tmp_path, capsys):
    from glow_tf.cli.train import parse_config  # noqa: PLC0415
    config = tmp_path / "tiny.py"
    config.write_text('"""A test config."""\nFLAGS = dict(problem="digits", depth=2, width=16, learntop=True)\n'
                      'TARGET = "none"\n')
    args = parse_config(["--config", str(config), "--width", "24"])
    assert (args.problem, args.depth, args.width, args.learntop) == ("digits", 2, 24, True)
    assert parse_config([]).depth == 32  # the original's default without --config
    config.write_text('FLAGS = dict(no_such_flag=1)\nTARGET = "none"\n')
    assert "no_such_flag" in train_error(["--config", str(config)], capsys)


class _FakeTestData:
    full_test_its = 3

    def __init__(self):
        self.starts = []

    def test(self, start_batch=0):
        self.starts.append(start_batch)
        return [(np.zeros(1), np.zeros(1))] * self.full_test_its


def test_evaluations_continue_through_the_test_stream():
    """As the original's test iterator: each evaluation starts where the previous one stopped; the
    evaluation after the init (epoch 0) reads the same batches as the first of the original."""
    from glow_tf.cli.train import parse_config  # noqa: PLC0415
    from glow_tf.training.loop import evaluate  # noqa: PLC0415
    data, args = _FakeTestData(), parse_config(["--epochs_full_valid", "2"])
    for epoch in (0, 2, 4, 6):
        evaluate(lambda x, y, counter: tf.constant([1.0, 2.0, 3.0, 4.0]), data, args, epoch)
    assert data.starts == [0, 0, 3, 6]


def test_quickstart_quality_judges_a_runs_samples(uninterrupted):
    """bench/quickstart_quality.py on a real run: samples drawn from the run's model, judged beside real
    test digits and noise by a classifier fitted on the real digits."""
    sys.path.insert(0, os.path.join(REPO, "bench"))
    try:
        import quickstart_quality  # noqa: PLC0415
    finally:
        sys.path.remove(os.path.join(REPO, "bench"))
    results = quickstart_quality.main(["--logdir", uninterrupted, "--n", "40"])
    assert set(results) >= {"samples", "real", "noise"} and results["samples"]["n"] == 40
    assert results["real"]["mean_confidence"] > results["noise"]["mean_confidence"] + 0.2
    assert 0.1 <= results["samples"]["mean_confidence"] <= 1.0
