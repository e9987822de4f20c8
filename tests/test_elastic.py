"""Elastic training (train.py --elastic 1, docs/elastic.md) under a real elastic horovodrun with Gloo:
`localhost` and `127.0.0.1` are two hosts, listed by a discovery script that prints a file the test
rewrites. One run shows a lost worker (SIGKILL of rank 0 in mid-epoch), the rollback to the last
commit, and a worker added by the discovery script that ends with the others' weights. The
position arithmetic of the data is checked without Horovod.
"""
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from horovod_launch import ENV, HOROVODRUN, REPO, needs_horovod

WORKER = os.path.join(REPO, "tests", "elastic_worker.py")

COMMIT = 3  # --elastic_commit_steps
TRAIN_ITS = 8  # 1024 anchored images per epoch over 2 starting workers of 64
EPOCHS = 6  # epochs 1..5: 40 steps
KILL_STEP = 11  # rank 0 is killed once it has printed this step: epoch 2, two steps after the commit at 9
TINY = ["--problem", "digits", "--dal", "0", "--anchor_size", "8", "--n_levels", "2", "--depth", "2",
        "--width", "16", "--n_train", "1024", "--epochs_warmup", "1", "--epochs_full_valid", "2",
        "--epochs_full_sample", "100", "--flow_coupling", "1", "--learntop", "--gradient_checkpointing", "0",
        "--seed", "3", "--n_batch_init", "128", "--epochs", str(EPOCHS), "--elastic", "1",
        "--elastic_commit_steps", str(COMMIT), "--verbose"]


class Job:
    """An elastic horovodrun in its own process group; its output lines are collected as they come."""

    def __init__(self, tmp_path, args, np=2, hosts="localhost:1\n127.0.0.1:1\n", launcher=()):
        self.dir = tmp_path
        self.hosts = tmp_path / "hosts"
        self.hosts.write_text(hosts)
        discover = tmp_path / "discover.sh"
        discover.write_text(f"#!/bin/sh\ncat {self.hosts}\n")
        discover.chmod(0o755)
        self.lines, self.cond = [], threading.Condition()
        self.proc = subprocess.Popen(
            [HOROVODRUN, "-np", str(np), "--min-np", "1", "--max-np", "4", "--host-discovery-script", str(discover),
             *launcher, sys.executable, WORKER, str(tmp_path), "--", *args],
            env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, what, timeout=300):
        """The first output line satisfying `predicate` (waiting for it)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                found = next((line for line in self.lines if predicate(line)), None)
                if found is not None:
                    return found
                if self.proc.poll() is not None and self.proc.stdout.closed:
                    break
                if time.time() > deadline:
                    break
                self.cond.wait(timeout=1.0)
        self.kill()
        pytest.fail(f"waited in vain for {what}:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout=400):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the elastic run hung:\n" + "\n".join(self.lines[-60:]))
        self.reader.join(timeout=30)  # the last lines
        with self.cond:
            return list(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _step_lines(lines):
    """[(n_processed, loss)] of the chief's --verbose step lines, in order."""
    out = []
    for line in lines:
        m = re.match(r"\[\d+\]<stdout>:(\d+) [0-9.e-]+ \[([-0-9.e]+)", line)
        if m:
            out.append((int(m.group(1)), float(m.group(2))))
    return out


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f][1:]


@needs_horovod
@pytest.mark.slow
def test_a_killed_worker_and_a_joining_one(tmp_path):
    """2 workers; rank 0 is SIGKILLed in mid-epoch 2: the survivor rolls back to the commit (losing
    fewer than --elastic_commit_steps steps), becomes rank 0 and goes on alone; the discovery script
    then offers a second slot and a new worker joins. Every epoch is logged once, the run ends at
    its last step, and the survivor and the newcomer end with bit-identical, finite weights."""
    logdir = tmp_path / "run"
    (tmp_path / "hold_lone_commits").touch()  # the survivor waits at a commit for the worker added below
    job = Job(tmp_path, [*TINY, "--logdir", str(logdir)])
    try:
        job.wait_for(lambda line: line.startswith(f"[0]<stdout>:{KILL_STEP * 128} "), f"step {KILL_STEP}")
        rank0 = glob.glob(str(tmp_path / "started_rank0_*"))
        assert len(rank0) == 1, rank0
        os.kill(int(open(rank0[0]).read()), signal.SIGKILL)
        rollback = job.wait_for(lambda line: "elastic: a worker was lost at step" in line, "the rollback")
        alone = job.wait_for(lambda line: "elastic: 1 worker(s) from step" in line, "the survivor's restart")
        survivor_host = "localhost" if "127.0.0.1" in rank0[0] else "127.0.0.1"
        job.hosts.write_text(f"{survivor_host}:2\n")  # a second slot on the surviving host
        joined = job.wait_for(lambda line: "elastic: 2 worker(s) from step" in line
                              and job.lines.index(line) > job.lines.index(alone), "the joined world")
        lines = job.finish()
    finally:
        job.kill()
    assert job.proc.returncode == 0, "\n".join(lines[-60:])

    # The rollback: to a commit (every COMMIT steps or an epoch end), fewer than COMMIT steps lost.
    reached, committed = map(int, re.search(r"lost at step (\d+): rolled back to the commit at step (\d+)",
                                            rollback).groups())
    assert committed % COMMIT == 0 or committed % TRAIN_ITS == 0, rollback
    assert KILL_STEP <= reached and 0 <= reached - committed < COMMIT, rollback
    assert f"from step {committed} " in alone, alone
    # The data position: rank r of 2 stood at batch `committed` of its stream; alone, its new stream
    # continues at the same fraction of a pass, batch 2 * committed; then back to 2 streams.
    assert alone.endswith(f"data batch {2 * committed} of each worker's stream"), alone
    rejoin_step = int(re.search(r"from step (\d+)", joined).group(1))
    assert joined.endswith(f"data batch {math.ceil((2 * committed + rejoin_step - committed) / 2)} of each "
                           f"worker's stream"), joined

    # Steps, counted from the chief's step lines: the old chief's up to the kill, then the new
    # chief's from the commit on, with each step's images (128 with 2 workers, 64 alone).
    steps = _step_lines(lines)
    processed = [p for p, _ in steps]
    redo = processed.index(committed * 128 + 64)  # the survivor's first step
    assert processed[:redo] == [128 * s for s in range(1, len(processed[:redo]) + 1)]
    assert len(processed[:redo]) - committed <= reached - committed  # what was lost is what is redone
    after = processed[redo:]
    assert all(b - a in (64, 128) for a, b in zip(after, after[1:])), after
    assert len(after) == (EPOCHS - 1) * TRAIN_ITS - committed  # every step once after the rollback

    # The logs: each epoch once, in order, counters continuing; the loss still falls after the reset.
    train = _read_jsonl(logdir / "train.txt")
    assert [r["epoch"] for r in train] == list(range(1, EPOCHS))
    at_step = {s: 128 * s for s in range(committed + 1)}
    at_step.update({committed + 1 + i: p for i, p in enumerate(after)})
    assert [r["n_processed"] for r in train] == [at_step[e * TRAIN_ITS] for e in range(1, EPOCHS)]
    losses = [float(r["loss"]) for r in train]
    assert losses[-1] < losses[2] < losses[0], losses
    test = _read_jsonl(logdir / "test.txt")
    assert [r["epoch"] for r in test] == list(range(0, EPOCHS, 2))

    # The weights: the two workers at the end hold the same finite values, which are the checkpoint's.
    finals = sorted(glob.glob(str(tmp_path / "final_*.npz")))
    assert len(finals) == 2, finals
    a, b = (np.load(f) for f in finals)
    assert len(a.files) == len(b.files) > 0
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert np.all(np.isfinite(a[name])), name


def test_data_position_continues_at_the_same_fraction_of_a_pass():
    """Same size: the stream goes on batch for batch; a new size re-anchors at ceil(k * S / S')."""
    pytest.importorskip("horovod.tensorflow")
    from glow_tf.elastic import DataPosition  # noqa: PLC0415
    position = DataPosition(size=2, step=0, batch=0)
    assert position.start_batch(9, 2) == 9  # a rollback in the same world re-reads from the commit
    assert position.start_batch(9, 1) == 18  # one stream of twice the shard: the same fraction
    assert position.start_batch(13, 1) == 22
    assert position.start_batch(13, 3) == math.ceil(22 / 3)
    assert position.start_batch(20, 3) == math.ceil(22 / 3) + 7


def test_elastic_without_an_elastic_launcher_is_one_clear_line(monkeypatch):
    import train  # noqa: PLC0415
    monkeypatch.delenv("HOROVOD_ELASTIC", raising=False)
    with pytest.raises(SystemExit) as stopped:
        train.main(["--problem", "digits", "--elastic", "1"])
    assert str(stopped.value.code).startswith("train.py: --elastic 1 runs under an elastic horovodrun, e.g. "), \
        stopped.value.code


# --- a host the discovery script drops, and a resume that restores the data position ----------------------

@pytest.fixture(scope="module")
def removal_run(tmp_path_factory):
    """2 workers; once the chief has printed step REMOVE_STEP the discovery script stops listing rank
    1's host. Returns (output lines, logdir, worker directory, rank 0's host)."""
    tmp_path = tmp_path_factory.mktemp("removal")
    logdir = tmp_path / "run"
    job = Job(tmp_path, [*TINY, "--logdir", str(logdir)])
    try:
        job.wait_for(lambda line: line.startswith(f"[0]<stdout>:{REMOVE_STEP * 128} "), f"step {REMOVE_STEP}")
        rank0, rank1 = (glob.glob(str(tmp_path / f"started_rank{r}_*")) for r in (0, 1))
        assert len(rank0) == len(rank1) == 1, (rank0, rank1)
        kept = "localhost" if "_localhost_" in rank0[0] else "127.0.0.1"
        assert f"_{kept}_" not in rank1[0], (rank0, rank1)  # the two ranks are on the two hosts
        job.hosts.write_text(f"{kept}:1\n")
        lines = job.finish()
    finally:
        job.kill()
    assert job.proc.returncode == 0, "\n".join(lines[-60:])
    return lines, logdir, tmp_path


REMOVE_STEP = 5  # the chief's step at which rank 1's host leaves the discovery script's list


@needs_horovod
@pytest.mark.slow
def test_a_host_the_discovery_script_drops_leaves_without_losing_a_step(removal_run):
    """A clean removal: the workers stop at the next commit, nothing is rolled back, the survivor goes
    on alone from that commit with its stream re-anchored at the same fraction of a pass, and the run
    ends at its last step with every step done once and every epoch logged once."""
    lines, logdir, workdir = removal_run
    assert not [line for line in lines if "a worker was lost" in line], "a clean removal rolls nothing back"
    alone = [line for line in lines if "elastic: 1 worker(s) from step" in line]
    assert len(alone) == 1, "\n".join(lines[-60:])
    removed_at = int(re.search(r"from step (\d+) ", alone[0]).group(1))
    assert REMOVE_STEP <= removed_at < (EPOCHS - 1) * TRAIN_ITS, alone
    assert removed_at % COMMIT == 0 or removed_at % TRAIN_ITS == 0, alone  # at a commit
    assert alone[0].endswith(f"data batch {2 * removed_at} of each worker's stream"), alone

    # Every step once: 128 images a step with two workers up to the removal, 64 after it.
    processed = [p for p, _ in _step_lines(lines)]
    total = (EPOCHS - 1) * TRAIN_ITS
    expected = [128 * s for s in range(1, removed_at + 1)]
    expected += [128 * removed_at + 64 * s for s in range(1, total - removed_at + 1)]
    assert processed == expected, (removed_at, processed)
    train = _read_jsonl(logdir / "train.txt")
    assert [r["epoch"] for r in train] == list(range(1, EPOCHS))
    assert train[-1]["n_processed"] == expected[-1]
    finals = glob.glob(str(workdir / "final_*.npz"))
    assert len(finals) == 1, finals  # the removed worker was stopped, the survivor finished


@needs_horovod
@pytest.mark.slow
def test_resume_elastic_restores_the_data_position(removal_run, tmp_path):
    """The removal run's checkpoint of epoch RESUME_EPOCH, resumed alone with --resume --elastic 1 to
    the same last epoch, ends with the weights of the uninterrupted run, bit for bit (CPU). Its stream
    stood at batch removed_at + step, not at the step count (the survivor's stream was re-anchored at
    the removal), so reading from the step count would train on other batches and other weights."""
    lines, logdir, workdir = removal_run
    removed_at = int(re.search(r"from step (\d+) ", next(line for line in lines if "elastic: 1 worker(s)" in line))
                     .group(1))
    resume_step = RESUME_EPOCH * TRAIN_ITS
    assert removed_at < resume_step, "the removal must come before the checkpoint resumed from"
    # The run as the job that died after epoch RESUME_EPOCH left it: its newer checkpoints not written.
    resumed = tmp_path / "run"
    shutil.copytree(logdir, resumed)
    checkpoints = resumed / "checkpoints"
    prefixes = {int(p.name.split("-")[1].split(".")[0]) for p in checkpoints.glob("ckpt-*.index")}
    kept = max(n for n in prefixes if n in (RESUME_EPOCH, resume_step))
    for path in checkpoints.iterdir():
        if path.name == "checkpoint" or (path.name.startswith("ckpt-")
                                         and int(path.name.split("-")[1].split(".")[0]) > kept):
            path.unlink()
    # One host: horovodrun's elastic mode then needs the network interface named (it detects one
    # common to the hosts only from two on).
    job = Job(tmp_path, [*TINY, "--logdir", str(resumed), "--resume"], np=1, hosts="localhost:1\n",
              launcher=["--network-interface", "lo"])
    try:
        start = job.wait_for(lambda line: "elastic: 1 worker(s) from step" in line, "the resumed start")
        out = job.finish()
    finally:
        job.kill()
    assert job.proc.returncode == 0, "\n".join(out[-60:])
    uninterrupted = np.load(glob.glob(str(workdir / "final_*.npz"))[0])
    finals = glob.glob(str(tmp_path / "final_*.npz"))
    assert len(finals) == 1, finals
    again = np.load(finals[0])
    assert len(again.files) == len(uninterrupted.files) > 0
    for name in again.files:
        np.testing.assert_array_equal(again[name], uninterrupted[name], err_msg=name)
    position = resume_step - removed_at + 2 * removed_at
    assert f"from step {resume_step} " in start and start.endswith(f"data batch {position} of each worker's stream"), \
        start


RESUME_EPOCH = 3  # the checkpoint resumed from: the end of epoch 3 (step 24)
