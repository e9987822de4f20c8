"""Data-parallel training with Horovod (docs/original.md#data-parallelism): 2-worker `horovodrun --gloo` runs of
train.py on digits, against single-process computations of what the workers must have done; the
errors of misconfigured runs; the single-process fallback.

Each horovodrun launch costs its start and a TensorFlow import per rank (~10 s here) before any work,
so the 2-worker jobs share ONE launch (the `suite` fixture): tests/distributed_worker.py runs them one
after another in the same two rank processes, calling train.main as a fresh process would, and saves
each job's variables, consumed batches or SystemExit per rank; the worker marks each job's start in
its output, so the tests read what each rank printed during their job. The jobs, in order: the
digits run; its resume; --inference from it; --init_allreduce; the errors of ranks with different
flags, of more ranks than shards and of rank 0 refusing a logdir that holds a run (train.py's checks
stop both ranks together, so the jobs after them run in step); one training step on a fixed batch.
test_a_failure_on_rank0_only_stops_rank1_too also launches train.py on its own: only a real process
shows the exit code, the interpreter's own output and rank 1 not hanging once rank 0 is gone.
The horovodrun tests skip when horovod is not importable.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import data_loaders
import distributed_worker as worker
from data_loaders.digits import load_digits
from glow_tf import Glow, GlowConfig
from glow_tf.distributed import Distributed
from glow_tf.optim import Optimizer, beta2_from
from glow_tf.seeds import INIT_NOISE, noise_seed
from glow_tf.training import RunState, make_train_step
from horovod_launch import ENV, HOROVODRUN, REPO, needs_horovod

WORKER = os.path.join(REPO, "tests", "distributed_worker.py")
# Every variable a launcher or scheduler sets that says which worker a process is.
LAUNCHER_VARS = ("HOROVOD_RANK", "HOROVOD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
                 "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_ID",
                 "SLURM_JOB_ID", "HOROVOD_ELASTIC")

SEED = 3
# test_train.py's tiny model; with 2 workers an epoch is ceil(256 / (64 * 2)) = 2 steps of 64 images each.
TINY = ["--config", "tiny", "--seed", str(SEED), "--keep_checkpoints", "5"]  # configs/tiny.py
EPOCHS = 5  # epochs 1..4: 8 steps


def horovodrun(args, timeout=300):
    """`horovodrun -np 2 -H localhost:2 --gloo python ARGS`; returns (returncode, combined output).

    The timeout turns a hang (a worker waiting in a collective for one that is gone) into a failure;
    horovodrun and its workers run in their own process group, killed then.
    """
    proc = subprocess.Popen([HOROVODRUN, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, *args],
                            env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"horovodrun {' '.join(args)} hung for {timeout} s:\n{(stdout + stderr)[-5000:]}") from None
    return proc.returncode, stdout + stderr


def rank_lines(output, rank, stream="stderr"):
    """The lines a rank wrote to stream, as horovodrun relays them ("[rank]<stream>:line")."""
    tag = f"[{rank}]<{stream}>:"
    return [line[len(tag):] for line in output.splitlines() if line.startswith(tag)]


class Suite:
    """The shared launch (see the module docstring): its exit code and output, and each job's results."""

    def __init__(self, out, jobs, code, output):
        self.out, self.jobs, self.code, self.output = out, jobs, code, output

    def failure(self):
        if self.code is None:  # it hung: the output says so
            return self.output
        return f"the shared horovodrun ended with {self.code}:\n{self.output[-5000:]}"

    def results(self, job, stops=False):
        """[rank 0's, rank 1's] results of `job`: what train.main or one_step returned, or with
        `stops` {"exit": the SystemExit's code}; a job that went otherwise fails here."""
        ranks = []
        for r in (0, 1):
            path = self.out / job / f"rank{r}.pkl"
            if not path.exists():
                raise AssertionError(f"job {job}: no results from rank {r}; {self.failure()}")
            with open(path, "rb") as f:
                result = pickle.load(f)
            if "error" in result:
                raise AssertionError(f"job {job} failed on rank {r}:\n{result['error']}")
            if ("exit" in result) != stops:
                raise AssertionError(f"job {job} on rank {r}: {result.get('exit', 'no SystemExit')}; it printed:\n"
                                     + "\n".join(self.printed(job, r)[-30:]))
            ranks.append(result)
        return ranks

    def printed(self, job, rank, stream="stderr"):
        """The lines `rank` wrote to `stream` during `job`."""
        lines, current = [], None
        for line in rank_lines(self.output, rank, stream):
            if line.startswith(worker.JOB_MARKER):
                current = line[len(worker.JOB_MARKER):]
            elif current == job:
                lines.append(line)
        return lines


def assert_same_variables(actual, expected, atol=0.0, what=""):
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        if atol == 0.0:
            np.testing.assert_array_equal(a, e, err_msg=f"{what} variable {i}")
        else:
            np.testing.assert_allclose(a, e, atol=atol, rtol=0, err_msg=f"{what} variable {i}")


def init_batch(rank):
    """The init batch train.py gives `rank` of 2 with TINY's flags."""
    data = data_loaders.get_data("digits", n_batch_train=64, n_batch_init=128, anchor_size=8, dal=0, seed=SEED,
                                 rank=rank, size=2)
    return data.init_batch


def suite_jobs(out):
    """The shared launch's jobs (distributed_worker.py's format), each job's files under out/NAME; the
    jobs that read the digits run's logdir come after it, the step after the error jobs."""
    digits = out / "digits" / "logdir"

    def train(name, args, rank1_args=()):
        return {"name": name, "kind": "train", "args": list(map(str, args)), "rank1_args": list(map(str, rank1_args))}

    return [
        train("digits", [*TINY, "--epochs", EPOCHS, "--logdir", digits],
              ["--logdir", out / "digits" / "logdir_of_rank1"]),
        train("resume", [*TINY, "--epochs", EPOCHS, "--logdir", out / "resume" / "logdir",
                         "--restore_path", digits / "checkpoints" / "ckpt-4"],
              ["--restore_path", out / "resume" / "nonexistent", "--logdir", out / "resume" / "logdir_of_rank1"]),
        train("inference", [*TINY, "--epochs", EPOCHS, "--inference", "--restore_path", digits,
                            "--logdir", out / "inference" / "logdir"]),
        train("init_allreduce", [*TINY, "--epochs", "1", "--init_allreduce", "1", "--logdir",
                                 out / "init_allreduce" / "logdir"]),
        train("different_flags", [*TINY, "--epochs", "2", "--logdir", out / "different_flags" / "logdir"],
              ["--lr", "0.002", "--depth", "3"]),
        train("more_ranks_than_shards", ["--problem", "celeba", "--data_dir", out / "tfr", "--image_size", "8",
                                         "--n_levels", "2", "--depth", "1", "--logdir",
                                         out / "more_ranks_than_shards" / "logdir"]),
        train("logdir_holds_a_run", [*TINY, "--epochs", "2", "--logdir", digits]),
        {"name": "step", "kind": "step"},
        {"name": "step_reversible", "kind": "step", "backprop": "reversible"},
    ]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The one horovodrun launch of every job in suite_jobs; a hang keeps the results saved before it."""
    out = tmp_path_factory.mktemp("suite")
    jobs = suite_jobs(out)
    with open(out / "jobs.json", "w") as f:
        json.dump(jobs, f, indent=1)
    x = np.random.RandomState(0).randint(0, 256, size=(8, 8, 8, 3)).astype(np.uint8)
    for split in ("train", "validation"):  # one shard for two ranks (more_ranks_than_shards)
        data_loaders.write_examples(str(out / "tfr"), split, 8, x, np.zeros(8, np.int64), shards=1)
    try:
        code, output = horovodrun([WORKER, "suite", str(out)], timeout=600)
    except AssertionError as hang:
        code, output = None, str(hang)
    return Suite(out, [job["name"] for job in jobs], code, output)


@pytest.fixture(scope="module")
def digits_run(suite):
    """2 workers, 4 epochs on digits; rank 1 is given its own --logdir, which must stay unused."""
    out = suite.out / "digits"
    logdir = str(out / "logdir")
    ranks = suite.results("digits")
    config = GlowConfig.load(os.path.join(logdir, "config.json"))
    return {"out": out, "logdir": logdir, "ranks": ranks, "config": config}


@pytest.fixture(scope="module")
def step_run(suite):
    """The step job's results on both ranks (see distributed_worker.one_step)."""
    return suite.results("step")


@needs_horovod
@pytest.mark.slow
def test_the_shared_launch_runs_every_job_with_the_ranks_in_step(suite):
    """The shared horovodrun exits 0: every job saved its results on both ranks, and after each job
    (the error jobs too) the worker found both ranks done with the same job."""
    assert suite.code == 0, suite.failure()
    for job in suite.jobs:
        for r in (0, 1):
            assert (suite.out / job / f"rank{r}.pkl").exists(), f"job {job}, rank {r}"


@needs_horovod
@pytest.mark.slow
def test_ranks_end_with_identical_weights_equal_to_the_checkpoint(digits_run):
    r0, r1 = digits_run["ranks"]
    assert_same_variables(r1["final"], r0["final"], what="rank 1 vs rank 0")
    assert any(not np.array_equal(a, b) for a, b in zip(r0["final"], r0["after_build"])), "nothing was trained"
    glow = Glow(digits_run["config"])
    prefix = tf.train.latest_checkpoint(os.path.join(digits_run["logdir"], "checkpoints"))
    tf.train.Checkpoint(model=glow).restore(prefix).expect_partial()
    assert_same_variables([v.numpy() for v in glow.variables], r0["final"], what="checkpoint vs rank 0")


@needs_horovod
@pytest.mark.slow
def test_ranks_train_on_disjoint_shards(digits_run):
    """Every consumed image is a training image (digits has no duplicates); rank r's come from its
    contiguous half of the training set (the original's shard), so the ranks never share one."""
    x_train = load_digits(8)[0]
    index = {img.tobytes(): i for i, img in enumerate(x_train)}
    assert len(index) == len(x_train)
    half = len(x_train) // 2
    used = []
    for r, rank in enumerate(digits_run["ranks"]):
        batches = rank["consumed"]
        assert len(batches) >= 2 * (EPOCHS - 1) and all(b.shape == (64, 8, 8, 3) for b in batches)
        ids = np.array([index[img.tobytes()] for b in batches[:2 * (EPOCHS - 1)] for img in b])
        assert np.all((ids >= r * half) & (ids < (r + 1) * half)), f"rank {r} left its shard"
        used.append(set(ids.tolist()))
    assert not used[0] & used[1]


@needs_horovod
@pytest.mark.slow
def test_init_is_rank0s_init_broadcast_to_every_rank(digits_run):
    """The original: rank 0 builds its weights (seed rank + size*seed), initialises the actnorms on its
    init batch with its init noise, and broadcasts; rank 1's own weights and batch play no part."""
    x0, _ = init_batch(0)
    reference = Glow(digits_run["config"], seed=0 + 2 * SEED)
    reference.initialize(x0, seed=noise_seed(0 + 2 * SEED, INIT_NOISE, 0))
    expected = [v.numpy() for v in reference.variables]
    for r, rank in enumerate(digits_run["ranks"]):
        assert_same_variables(rank["after_build"], expected, atol=1e-6, what=f"rank {r} after init")


@needs_horovod
@pytest.mark.slow
def test_only_rank0_writes_files(digits_run):
    out, logdir = digits_run["out"], digits_run["logdir"]
    written = set(os.listdir(logdir))
    assert {"config.json", "train.txt", "test.txt", "checkpoints", "best", "epoch_1_sample_0.png"} <= written
    assert not os.path.exists(out / "logdir_of_rank1")  # rank 1's --logdir
    assert os.listdir(out / "cwd0") == [] and os.listdir(out / "cwd1") == []  # nothing relative to the cwd
    with open(os.path.join(logdir, "train.txt")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 + EPOCHS - 1, "one hyper-parameter line, then one line per epoch, written once"


@needs_horovod
@pytest.mark.slow
def test_two_rank_resume_continues_exactly(digits_run, suite):
    """Resuming from the run's checkpoint after epoch 2 (step 4) ends with the uninterrupted run's
    weights. Rank 1 is given a --restore_path that does not exist: only rank 0 reads the checkpoint,
    and the counters (epoch, step) reach rank 1 by broadcast, so it resumes its stream at batch 4."""
    ckpt = os.path.join(digits_run["logdir"], "checkpoints", "ckpt-4")
    assert os.path.exists(ckpt + ".index")
    ranks = suite.results("resume")  # --restore_path ckpt; on rank 1 a nonexistent one and its own --logdir
    for r in (0, 1):
        assert_same_variables(ranks[r]["final"], digits_run["ranks"][0]["final"], atol=1e-6, what=f"rank {r}")
        resumed_batches, full_batches = ranks[r]["consumed"][:4], digits_run["ranks"][r]["consumed"][4:8]
        for got, want in zip(resumed_batches, full_batches):
            np.testing.assert_array_equal(got, want)
    assert not os.path.exists(suite.out / "resume" / "logdir_of_rank1")


@needs_horovod
@pytest.mark.slow
def test_inference_gathers_every_ranks_test_shard_in_order(suite):
    """--inference with 2 ranks: each encodes and decodes its half of the test set; rank 0 writes
    them all, in the test set's order (the reconstructions are the test images, up to one level)."""
    suite.results("inference")  # --restore_path: the digits run's logdir
    z, x, y = (np.load(suite.out / "inference" / "logdir" / f"{k}.npy") for k in "zxy")
    _, _, x_test, y_test = load_digits(8)
    assert z.shape == (len(x_test), 8 * 8 * 3) and x.shape == x_test.shape
    np.testing.assert_array_equal(y, y_test)
    diff = np.abs(x.astype(int) - x_test.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


@needs_horovod
@pytest.mark.slow
def test_init_allreduce_is_the_init_on_all_ranks_batches(suite):
    """--init_allreduce 1: every actnorm's statistics over both ranks' init batches (each with its own
    init noise), from rank 0's initial weights: the single-process init on the concatenated batch."""
    ranks = suite.results("init_allreduce")  # TINY, --epochs 1 --init_allreduce 1
    config = GlowConfig.load(str(suite.out / "init_allreduce" / "logdir" / "config.json"))
    reference = Glow(config, seed=0 + 2 * SEED)
    xs, noises = [], []
    for r in (0, 1):
        x, _ = init_batch(r)
        # rank r's dequantisation noise, the draw Glow.initialize makes with its seed
        noises.append((reference.dequantize(x, seed=noise_seed(r + 2 * SEED, INIT_NOISE, 0))
                       - reference.preprocess(x)).numpy())
        xs.append(x)
    reference.initialize(np.concatenate(xs), noise=np.concatenate(noises))
    expected = [v.numpy() for v in reference.variables]
    for r, rank in enumerate(ranks):
        assert_same_variables(rank["after_build"], expected, atol=1e-5, what=f"rank {r} after init")
    rank0_only = Glow(config, seed=0 + 2 * SEED)
    rank0_only.initialize(xs[0], noise=noises[0])
    gap = max(np.max(np.abs(a.astype(np.float64) - v.numpy()))
              for a, v in zip(ranks[0]["after_build"], rank0_only.variables))
    assert gap > 1e-3, "rank 0's batch alone gives the same init: the comparison shows nothing"


@needs_horovod
@pytest.mark.slow
def test_two_rank_step_is_one_step_on_the_concatenated_batch(step_run):
    """Each rank steps on its half of a fixed batch with fixed noise; one process steps on the whole
    batch with the same noise. Mean gradients (Adamax's m1 = (1 - beta1) g), mean statistics, the
    allreduced actnorm init and the weights after the step agree to 1e-5 (weights with a gradient
    near Adamax's epsilon: to one step, see _assert_same_adamax_step); summed gradients would be twice
    as large."""
    ranks = step_run
    x, y, init_noise, step_noise = worker.step_inputs(2)
    whole = worker.one_step(Distributed(), x, y, init_noise, step_noise)
    for r, rank in enumerate(ranks):
        assert rank["finite"]
        assert_same_variables(rank["after_init"], whole["after_init"], atol=1e-5, what=f"rank {r} init")
        np.testing.assert_allclose(rank["stats"], whole["stats"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(rank["grad_norm"], whole["grad_norm"], atol=1e-5, rtol=0)
        grads, whole_grads = ([m / (1 - 0.9) for m in res["m1"]] for res in (rank, whole))
        assert_same_variables(grads, whole_grads, atol=1e-5, what=f"rank {r} gradient")
        _assert_same_adamax_step(rank["params"], whole["params"], whole_grads, what=f"rank {r} weights")
    assert_same_variables(ranks[1]["params"], ranks[0]["params"], what="rank 1 vs rank 0")
    assert whole["grad_norm"] > 1e-2  # the comparison is not between zeros


@needs_horovod
@pytest.mark.slow
def test_two_rank_reversible_steps_are_store_steps_on_the_concatenated_batch(suite):
    """--backprop reversible under 2 ranks: each rank rebuilds its own activations and its gradients
    are allreduced as store's are. Against one process on the whole batch with --backprop store: the
    first step's mean gradients and weights as in the store test above, the statistics of the
    REVERSIBLE_STEPS steps after it to 1e-5, and the weights after them to 1e-5 but for fewer than 1%
    of them (the weights of near-zero gradients, see _assert_same_adamax_step), which stay within lr
    (each of these steps moves a weight by at most about 0.1-0.2 lr)."""
    ranks = suite.results("step_reversible")
    x, y, init_noise, step_noise = worker.step_inputs(2)
    whole = worker.one_step(Distributed(), x, y, init_noise, step_noise, backprop="store",
                            more_steps=worker.REVERSIBLE_STEPS)
    whole_grads = [m / (1 - 0.9) for m in whole["m1"]]
    for r, rank in enumerate(ranks):
        assert rank["finite"] and all(rank["more_finite"])
        np.testing.assert_allclose(rank["stats"], whole["stats"], atol=1e-5, rtol=0)
        assert_same_variables([m / (1 - 0.9) for m in rank["m1"]], whole_grads, atol=1e-5, what=f"rank {r} gradient")
        _assert_same_adamax_step(rank["params"], whole["params"], whole_grads, what=f"rank {r} weights")
        np.testing.assert_allclose(rank["more_stats"], whole["more_stats"], atol=1e-5, rtol=0)
        diffs = np.concatenate([np.abs(p - e).ravel() for p, e in zip(rank["more_params"], whole["more_params"])])
        assert diffs.max() <= worker.STEP_LR, f"rank {r}: weights {diffs.max():.3g} apart"
        assert (diffs > 1e-5).mean() < 0.01, f"rank {r}: {(diffs > 1e-5).sum()} weights differ by more than 1e-5"
    assert_same_variables(ranks[1]["more_params"], ranks[0]["more_params"], what="rank 1 vs rank 0")
    moved = max(np.abs(p - e).max() for p, e in zip(whole["more_params"], whole["params"]))
    assert moved > 1e-3  # the steps after the first changed the weights


@needs_horovod
@pytest.mark.slow
def test_a_nan_on_one_rank_skips_the_step_on_every_rank(step_run):
    """The non-finite guard reads the averaged gradients: rank 0's own gradients are finite, yet it
    skips the step that rank 1's NaN spoils, as rank 1 does (the step worker's second step)."""
    for r, rank in enumerate(step_run):
        assert rank["finite"] and not rank["second_finite"] and rank["second_unchanged"], r


def _assert_same_adamax_step(params, expected, grads, what):
    """Weights after one Adamax step from gradients that agree to 1e-5: equal to 1e-5 where |g| >= 1e-6.

    Below that the step m1 / (m2 + 1e-8) = 0.1 g / (|g| + 1e-8) turns float32 round-off in g into a
    relative change of the step (e.g. g = 2.41e-8 vs 2.56e-8 moves a weight by 1.2e-5 more at lr 0.01),
    so those few weights are only held to one step's size (lr * 0.1 = 1e-3).
    """
    n_tiny = 0
    for i, (p, e, g) in enumerate(zip(params, expected, grads)):
        tiny = (np.abs(g) < 1e-6) & (g != 0)  # a zero gradient is no step on both sides
        n_tiny += int(tiny.sum())
        np.testing.assert_allclose(p[~tiny], e[~tiny], atol=1e-5, rtol=0, err_msg=f"{what} variable {i}")
        np.testing.assert_allclose(p[tiny], e[tiny], atol=1e-3, rtol=0, err_msg=f"{what} variable {i} (|g| < 1e-6)")
    assert n_tiny < 0.01 * sum(p.size for p in params), f"{what}: {n_tiny} near-zero gradients; the check is weak"


def _single_error_line(lines, rank, message):
    """The one line of `lines` (what `rank` wrote to stderr) holding `message`; no line holds a traceback."""
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[-30:])
    hits = [line for line in lines if message in line]
    assert len(hits) == 1, f"rank {rank}: {message!r} not printed once:\n" + "\n".join(lines[-30:])
    return hits[0]


def _stopped(suite, job):
    """[rank 0's, rank 1's] stderr lines in `job`, which must have stopped both with a failing SystemExit
    (a message or a non-zero code: the process's exit code would not be 0)."""
    for r, result in enumerate(suite.results(job, stops=True)):
        assert result["exit"] not in (None, 0), f"rank {r}: {result['exit']!r}"
    return [suite.printed(job, r) for r in (0, 1)]


@needs_horovod
@pytest.mark.slow
def test_more_ranks_than_shards_is_one_line_from_every_rank(suite):
    printed = _stopped(suite, "more_ranks_than_shards")  # --problem celeba, a folder with 1 shard per split
    for r in (0, 1):
        _single_error_line(printed[r], r, "train.py: 2 ranks but only 1 train TFRecord shards")
    assert not os.path.exists(suite.out / "more_ranks_than_shards" / "logdir")


@needs_horovod
@pytest.mark.slow
def test_ranks_with_different_flags_stop_naming_the_fields(suite):
    printed = _stopped(suite, "different_flags")  # rank 1 adds --lr 0.002 --depth 3
    for r in (0, 1):
        line = _single_error_line(printed[r], r, "workers were started with different settings")
        assert "depth: 2 on worker 0, 3 on worker 1" in line and "lr: 0.001 on worker 0, 0.002 on worker 1" in line
        assert "n_train" not in line  # only the differing fields
    assert not os.path.exists(suite.out / "different_flags" / "logdir")


@needs_horovod
@pytest.mark.slow
def test_a_failure_on_rank0_only_stops_rank1_too(digits_run, suite):
    """Rank 0 refuses a --logdir that holds a run; rank 1 (which does not look at the logdir) stops
    with a line naming rank 0's error instead of waiting for it in a collective. In a launch of its
    own, where the exit code is the processes' and a hang of rank 1 would show; and in the shared one."""
    code, out = horovodrun([os.path.join(REPO, "train.py"), *TINY, "--epochs", "2", "--logdir", digits_run["logdir"]])
    assert code != 0

    def check(printed):
        _single_error_line(printed[0], 0, "already holds a run")
        line = _single_error_line(printed[1], 1, "worker 1 of 2 stops: worker 0 failed")
        assert "already holds a run" in line

    check([rank_lines(out, 0), rank_lines(out, 1)])
    check(_stopped(suite, "logdir_holds_a_run"))


# --- without horovod ---------------------------------------------------------------------------------
@pytest.fixture
def no_horovod(monkeypatch):
    """Makes `import horovod.tensorflow` fail in this process, and removes any launcher variables."""
    monkeypatch.setitem(sys.modules, "horovod.tensorflow", None)
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_launched_without_horovod_is_a_clear_error(no_horovod):
    no_horovod.setenv("HOROVOD_RANK", "1")
    no_horovod.setenv("HOROVOD_SIZE", "2")
    with pytest.raises(RuntimeError, match="launched as one of 2 workers, but horovod is not installed"):
        Distributed()
    with pytest.raises(RuntimeError, match="horovod is not installed"):
        Distributed(use_horovod=True)


def test_train_py_launched_without_horovod_says_so_in_one_line(tmp_path):
    """A launcher's variables without an importable horovod (a stand-in package that fails to import)."""
    fake = tmp_path / "fake" / "horovod" / "tensorflow"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("raise ImportError('horovod.tensorflow stand-in: not built')\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path / 'fake'}{os.pathsep}{REPO}", "HOROVOD_RANK": "0", "HOROVOD_SIZE": "2"}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *TINY, "--logdir", str(tmp_path / "l")],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "train.py: this process was launched as one of 2 workers, but horovod is not installed" in proc.stderr
    assert not os.path.exists(tmp_path / "l")


def test_a_plain_process_is_one_worker_without_horovod(no_horovod):
    dist = Distributed()
    assert (dist.rank, dist.size, dist.local_rank, dist.is_chief) == (0, 1, 0, True)
    v = tf.Variable([1.0, 2.0])
    dist.broadcast_variables([v])
    assert dist.allreduce_mean([v])[0] is v and dist.allgather_object("a") == ["a"]
    assert dist.broadcast_object({"k": 1}) == {"k": 1}
    dist.check_same({"lr": 0.1})
    with pytest.raises(SystemExit, match="^train.py: bad flag$"):  # passed through unchanged
        with dist.stop_together():
            raise SystemExit("train.py: bad flag")
    with pytest.raises(RuntimeError, match="Horovod is disabled"):
        no_horovod.setenv("HOROVOD_RANK", "0")
        no_horovod.setenv("HOROVOD_SIZE", "2")
        Distributed(use_horovod=False)


def test_broadcast_sends_few_collectives_for_many_variables(launcher_env):
    """Variables travel in flat groups: 300 float32 and 4 int64/bool variables in two broadcasts, one per
    wire dtype, not one per variable (thousands for the CIFAR-10 model with its optimiser)."""
    fake = FakeHorovod(2)
    dist = _collective(launcher_env, fake)
    variables = [tf.Variable(tf.fill([i % 7 + 1], float(i))) for i in range(300)]
    variables += [tf.Variable([3, 4], dtype=tf.int64), tf.Variable(True), tf.Variable([5], dtype=tf.int32),
                  tf.Variable(False)]
    expected = [v.numpy() for v in variables]
    dist.broadcast_variables(variables)
    assert sorted(dtype.name for _, dtype in fake.wire) == ["float32", "int64"]
    for v, e in zip(variables, expected):
        np.testing.assert_array_equal(v.numpy(), e)


# --- launchers and schedulers, in-process with a stand-in horovod -------------------------------------
class FakeHorovod(types.ModuleType):
    """Stands in for horovod.tensorflow: a world of `size` workers in which this process is rank 0.

    Collectives return their input (every worker holds the same values) unless `broadcast_result` is
    given, and record the dtype of every tensor that would cross the wire.
    """

    Average = "Average"

    def __init__(self, size, broadcast_result=None):
        super().__init__("horovod.tensorflow")
        self._size, self.initialised, self.wire = size, False, []
        self._broadcast_result = broadcast_result

    def init(self):
        self.initialised = True

    def size(self):
        return self._size

    def rank(self):
        return 0

    def local_rank(self):
        return 0

    def grouped_allreduce(self, tensors, op):
        assert op == self.Average
        self.wire.extend(("allreduce", t.dtype) for t in tensors)
        return list(tensors)

    def broadcast(self, tensor, root_rank):
        self.wire.append(("broadcast", tensor.dtype))
        return tensor if self._broadcast_result is None else self._broadcast_result(tensor)


@pytest.fixture
def launcher_env(monkeypatch):
    """A clean launcher environment; install(size) makes `import horovod.tensorflow` give a FakeHorovod."""
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)

    def install(size):
        fake = FakeHorovod(size)
        package = types.ModuleType("horovod")
        package.tensorflow = fake
        monkeypatch.setitem(sys.modules, "horovod", package)
        monkeypatch.setitem(sys.modules, "horovod.tensorflow", fake)
        return fake

    return monkeypatch, install


# (environment, size Horovod reports, expected world size or the start of the error).
LAUNCHES = {
    "plain process": ({}, None, 1),
    "horovodrun": ({"HOROVOD_RANK": "1", "HOROVOD_SIZE": "4"}, 4, 4),
    "mpirun (Open MPI)": ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, 4, 4),
    "mpiexec (MPICH, Intel MPI)": ({"PMI_RANK": "2", "PMI_SIZE": "4"}, 4, 4),
    "srun --mpi=pmix": ({"PMIX_RANK": "2", "SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
                         "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "7"}, 4, 4),
    "srun --mpi=pmix, Horovod not connected": ({"PMIX_RANK": "2", "SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4"}, 1,
                                               "PMIx started 4 workers (PMIX_RANK=2, SLURM_STEP_NUM_TASKS=4) but "
                                               "Horovod sees 1"),
    "prterun (PMIx without a size), rank 1 alone": ({"PMIX_RANK": "1"}, 1,
                                                    "PMIx started this process as rank 1 (PMIX_RANK) but Horovod "
                                                    "sees one worker"),
    "plain srun, no MPI plugin": ({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
                                   "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "7"}, 1,
                                  "Slurm srun started 4 workers (SLURM_PROCID=1, SLURM_STEP_NUM_TASKS=4) but Horovod "
                                  "sees 1"),
    "plain srun, rank 0 also refuses": ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2"}, 1,
                                        "Slurm srun started 2 workers"),
    # The batch script of `sbatch --ntasks=4` is one process: SLURM_PROCID=0 and the job's SLURM_NTASKS.
    "python in an sbatch script": ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}, None, 1),
    "srun -n 1 (an interactive step)": ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1",
                                         "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "7"}, None, 1),
    "mpirun inside an sbatch job": ({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "SLURM_PROCID": "1",
                                     "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "8"}, 8, 8),
    "horovodrun inside srun -n 1": ({"HOROVOD_RANK": "1", "HOROVOD_SIZE": "2", "SLURM_PROCID": "0",
                                     "SLURM_STEP_NUM_TASKS": "1"}, 2, 2),
    "a rank beyond the size": ({"OMPI_COMM_WORLD_RANK": "4", "OMPI_COMM_WORLD_SIZE": "4"}, 4,
                               "cannot tell how this process was started: OMPI_COMM_WORLD_RANK=4 but "
                               "OMPI_COMM_WORLD_SIZE=4"),
    "a malformed size": ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "four"}, 4,
                         "cannot tell how this process was started: SLURM_STEP_NUM_TASKS='four'; expected an integer"),
}


@pytest.mark.parametrize("case", LAUNCHES)
def test_every_launcher_starts_horovod_or_stops_with_a_reason(launcher_env, case):
    """Each launcher's variables give Horovod's world, or one error when Horovod's world is not the one
    the scheduler started; a plain process or an sbatch script trains alone without importing horovod."""
    env, horovod_size, expected = LAUNCHES[case]
    monkeypatch, install = launcher_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if horovod_size is None:
        monkeypatch.setitem(sys.modules, "horovod.tensorflow", None)  # importing it would fail
    else:
        fake = install(horovod_size)
    if isinstance(expected, str):
        with pytest.raises(RuntimeError) as error:
            Distributed()
        assert str(error.value).startswith(expected), str(error.value)
        return
    dist = Distributed()
    assert dist.size == expected
    assert (dist.hvd is not None) == (expected > 1)
    if expected > 1:
        assert fake.initialised


# The variables Horovod 0.28.1's elastic driver gives a worker it spawns (runner/gloo_run.py,
# create_slot_env_vars and create_run_env_vars(elastic=True)): the rank and size it planned then.
ELASTIC_SPAWN = {"HOROVOD_ELASTIC": "1", "HOROVOD_HOSTNAME": "10.0.0.3", "HOROVOD_LOCAL_RANK": "0",
                 "HOROVOD_CONTROLLER": "gloo"}


@pytest.mark.parametrize("planned_rank, planned_size, joined_size", [(2, 3, 2), (1, 2, 1), (0, 1, 4)])
def test_an_elastic_worker_joins_whatever_world_the_rendezvous_forms(launcher_env, planned_rank, planned_size,
                                                                     joined_size):
    """Under an elastic horovodrun, HOROVOD_SIZE is the size the driver planned when it spawned the
    worker; the hosts may change before its hvd.init(), which then forms another world. The worker
    must take that world, not exit: the driver blacklists the host of any worker that exits non-zero.
    The same mismatch under a static horovodrun is the broken launch check_world exists for."""
    monkeypatch, install = launcher_env
    env = {**ELASTIC_SPAWN, "HOROVOD_RANK": str(planned_rank), "HOROVOD_SIZE": str(planned_size)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    install(joined_size)
    dist = Distributed(use_horovod=True)  # what train.py --elastic 1 asks for
    assert dist.hvd is not None and dist.size == joined_size
    monkeypatch.delenv("HOROVOD_ELASTIC")
    if joined_size != planned_size:
        with pytest.raises(RuntimeError, match=f"horovodrun started {planned_size} workers .* Horovod sees "
                                               f"{joined_size}"):
            Distributed(use_horovod=True)


# --- what crosses the wire -----------------------------------------------------------------------------
# The tensor dtypes each Horovod 0.28.1 backend carries (horovod/common/ops/nccl_operations.cc and
# gloo_operations.cc, GetNCCLDataType / GetGlooDataType; MPI carries all of these).
NCCL_DTYPES = {tf.uint8, tf.int8, tf.int32, tf.int64, tf.float16, tf.float32, tf.float64}
GLOO_DTYPES = NCCL_DTYPES | {tf.uint16, tf.int16, tf.bool}


def _collective(launcher_env, fake):
    """A Distributed whose collectives go to `fake` (rank 0 of fake.size())."""
    monkeypatch, _ = launcher_env
    monkeypatch.setitem(sys.modules, "horovod.tensorflow", None)
    dist = Distributed(use_horovod=False)
    dist.hvd = fake
    return dist


def test_only_dtypes_every_backend_carries_cross_the_wire(launcher_env):
    """train.py's collectives on a model with every kind of variable (float weights, int32 shuffle
    indices, the actnorms' bool flags), its optimiser and its run counters (int64, float64): the
    --init_allreduce init, the broadcast from rank 0 and a training step."""
    fake = FakeHorovod(2)
    dist = _collective(launcher_env, fake)
    config = GlowConfig(image_size=8, n_levels=2, depth=1, width=8, flow_permutation="shuffle",
                        flow_coupling="affine", learntop=True, ycond=True, n_y=10)
    glow = Glow(config, seed=1)
    x = np.random.RandomState(0).randint(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
    y = np.arange(4, dtype=np.int32)
    dist.broadcast_variables(glow.variables)
    with dist.allreduced_actnorm_init():
        glow.initialize(x, y, seed=noise_seed(1, INIT_NOISE, 0))
    optimizer = Optimizer(glow.trainable_variables, beta2=beta2_from(10))
    state = RunState()
    variables = [*glow.variables, *optimizer.variables, *state.variables]
    assert {tf.bool, tf.int32, tf.int64, tf.float32, tf.float64} <= {v.dtype for v in variables}
    dist.broadcast_variables(variables)
    step = make_train_step(glow, optimizer, dist, seed=0)
    step(tf.constant(x), tf.constant(y), tf.constant(0.001), tf.constant(0, tf.int64))
    kinds = {kind for kind, _ in fake.wire}
    assert kinds == {"broadcast", "allreduce"}, fake.wire
    unsafe = sorted({(kind, dtype.name) for kind, dtype in fake.wire if dtype not in NCCL_DTYPES & GLOO_DTYPES})
    assert not unsafe, f"collectives on dtypes NCCL or Gloo cannot carry: {unsafe}"
    assert glow.is_initialized and all(bool(v) for v in glow.variables if v.dtype == tf.bool)


def test_broadcast_gives_every_variable_roots_value_in_its_own_dtype(launcher_env):
    """A stand-in broadcast that returns root's values (here: what was sent, plus one) reaches every
    variable, whatever dtype it travelled in, and each variable keeps its dtype."""
    fake = FakeHorovod(2, broadcast_result=lambda t: t + tf.ones_like(t))
    dist = _collective(launcher_env, fake)
    values = {tf.bool: [False, False], tf.int32: [1, -7], tf.int64: [2**40, 0], tf.float32: [0.5, -1.5],
              tf.float64: [1e-300, 2.0], tf.uint8: [0, 254]}
    variables = [tf.Variable(v, dtype=dtype) for dtype, v in values.items()]
    dist.broadcast_variables(variables)
    for variable, (dtype, sent) in zip(variables, values.items()):
        assert variable.dtype == dtype
        expected = [True, True] if dtype == tf.bool else np.array(sent, dtype.as_numpy_dtype) + 1
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=dtype.name)


def test_a_variable_no_backend_can_carry_is_named(launcher_env):
    dist = _collective(launcher_env, FakeHorovod(2))
    bad = tf.Variable(["a"], name="labels")
    with pytest.raises(ValueError, match="variable labels:0: cannot broadcast a string variable"):
        dist.broadcast_variables([tf.Variable([1.0]), bad])


def test_init_allreduce_reaches_every_actnorm_and_changes_nothing_for_equal_workers(launcher_env):
    """Under allreduced_actnorm_init each actnorm (those inside the coupling networks too) averages its
    mean and then its variance over the workers: two allreduces apiece. With every worker holding the
    same batch the average is the local value, so the init is bit for bit the single-process one."""
    from glow_tf.bijectors.actnorm import ActNorm  # noqa: PLC0415

    config = GlowConfig(image_size=8, n_levels=2, depth=2, width=8, flow_coupling="affine", learntop=True)
    x = np.random.RandomState(0).randint(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
    alone = Glow(config, seed=1)
    alone.initialize(x, seed=noise_seed(1, INIT_NOISE, 0))
    fake = FakeHorovod(2)
    dist = _collective(launcher_env, fake)
    together = Glow(config, seed=1)
    with dist.allreduced_actnorm_init():
        together.initialize(x, seed=noise_seed(1, INIT_NOISE, 0))
    n_actnorms = sum(isinstance(m, ActNorm) for m in together.submodules)
    assert n_actnorms > 2 * 2 and len(fake.wire) == 2 * n_actnorms
    assert_same_variables([v.numpy() for v in together.variables], [v.numpy() for v in alone.variables])
    fake.wire.clear()
    Glow(config, seed=1).initialize(x, seed=noise_seed(1, INIT_NOISE, 0))  # outside the block: no collective
    assert fake.wire == []
