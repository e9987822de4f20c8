"""One-shot acceptance run of a GPU machine (or container) for glow-tf; prints one JSON object.

    python scripts/gpu_acceptance.py [--quick]      (scripts/gpu_acceptance.sh picks the interpreter)

Parts, in order, each reported as {"status": "passed" | "failed" | "skipped", ...}:
  gpu          TensorFlow sees a GPU (its name and compute capability)
  libraries    the CUDA runtime, cuDNN and NCCL loaded are at least TensorFlow's/Horovod's build versions;
               the newest CUDA version the driver supports
  reference    tests/test_original_reference.py in this process: the original release's reference vectors
               reproduced to 1e-4 on the default device (the GPU), TF32 off
  train_epoch  one train.py epoch on digits; the test loss after it is below the one after the init
  train_speed  images/s of the training step, bench and CIFAR-10 configurations, without and with XLA
  sampling     CelebA-HQ (256px, 6 levels, depth 32) sampling latency at batch 1, T = 0.7
  memory       peak GPU memory over the run
  horovod      `horovodrun -np 1` with a GPU allreduce through the NCCL build
On a machine without a GPU the GPU parts are "skipped" with the reason, the others run on the CPU.
"passed" at the top is true when no part failed. About 5-8 minutes on one modern GPU (XLA compiles
of the CIFAR-10 step take most of it); --quick shrinks the CPU parts to well under a minute.
Exit status: 0 when passed, 1 otherwise.
"""
import argparse
import contextlib
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "bench"), os.path.join(REPO, "scripts")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The reference vectors of tests/fixtures/original_glow, checked to 1e-4 by this test file.
REFERENCE_TESTS = os.path.join(REPO, "tests", "test_original_reference.py")
# One digits epoch: the README quick start's model, or a smaller one with --quick; full learning rate from
# the first step (no warm-up), so that one epoch moves the test loss clearly.
DIGITS_FLAGS = ["--problem", "digits", "--dal", "0", "--anchor_size", "8", "--n_levels", "2", "--flow_coupling", "1",
                "--learntop", "--epochs", "2", "--epochs_warmup", "0", "--epochs_full_valid", "1",
                "--epochs_full_sample", "100", "--gradient_checkpointing", "0", "--seed", "0", "--progress", "off"]
DIGITS_MODEL = {False: ["--depth", "8", "--width", "64", "--n_train", "1500"],
                True: ["--depth", "2", "--width", "16", "--n_train", "256", "--n_test", "128"]}
SPEED_BATCH = 64  # per-GPU batch of the CIFAR-10 recipe (n_batch_train 64 at 32x32)
SPEED_STEPS = 20
HOROVOD_CHECK = """
import json
import tensorflow as tf
import horovod.tensorflow as hvd
hvd.init()
gpus = tf.config.list_physical_devices("GPU")
tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")
with tf.device("/GPU:0"):
    total = hvd.allreduce(tf.constant([hvd.rank() + 1.0, 2.0]), op=hvd.Sum)
print("ALLREDUCE " + json.dumps({"size": hvd.size(), "device": total.device, "sum": total.numpy().tolist(),
                                 "nccl_version_code": int(hvd.nccl_built())}), flush=True)
"""


class Skip(Exception):
    """A part that cannot run here; the message says why."""


def log(message):
    print(f"gpu_acceptance: {message}", file=sys.stderr, flush=True)


def run_part(name, fn, *args):
    """{"status", "seconds", ...fn's result}: passed, skipped (Skip) or failed (any other exception)."""
    log(f"{name} ...")
    start = time.perf_counter()
    try:
        result = {"status": "passed", **(fn(*args) or {})}
    except Skip as e:
        result = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 (every failure is reported in the JSON, the run goes on)
        result = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc(limit=-3)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    log(f"{name}: {result['status']} ({result['seconds']} s)")
    return result


def gpu_part(gpus):
    if not gpus:
        expected = [p for p in ("/dev/nvidiactl", "/dev/nvidia0") if os.path.exists(p)]
        if expected:
            raise RuntimeError(f"{expected[0]} exists but TensorFlow sees no GPU; check the driver, the container "
                               f"runtime (--gpus all / apptainer --nv) and CUDA_VISIBLE_DEVICES")
        raise Skip("no GPU: tf.config.list_physical_devices('GPU') is empty and there is no /dev/nvidia*")
    details = tf.config.experimental.get_device_details(gpus[0])
    cc = details.get("compute_capability")
    return {"gpus": len(gpus), "name": details.get("device_name"),
            "compute_capability": ".".join(map(str, cc)) if cc else None}


def libraries_part(gpus):
    if not gpus:
        raise Skip("no GPU; the image build runs the same check (scripts/check_gpu_libs.py)")
    import check_gpu_libs  # noqa: PLC0415

    reports = check_gpu_libs.check(check_gpu_libs.installed_wanted_versions())
    problems = [r["problem"] for r in reports.values() if not r["ok"]]
    if problems:
        raise RuntimeError("; ".join(problems))
    result = {key: {"found": r["found"], "wanted": r["wanted"], "path": r["path"]} for key, r in reports.items()}
    # The newest CUDA the driver supports (docs/cluster.md: CUDA 12.5.1 wants a 555+ driver).
    driver = ctypes.c_int()
    ctypes.CDLL(f"libcudart.so.{reports['cuda_runtime']['found'].split('.')[0]}").cudaDriverGetVersion(
        ctypes.byref(driver))
    result["driver_supports_cuda"] = check_gpu_libs.version_string(check_gpu_libs.decode_cuda_runtime(driver.value))
    return result


class _Outcomes:
    """A pytest plugin that keeps the node ids of the tests that passed and of those that did not."""

    def __init__(self):
        self.passed, self.failed = [], []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed:
            self.passed.append(report.nodeid)
        elif report.failed:
            self.failed.append(report.nodeid)


def reference_part():
    """tests/test_original_reference.py run in this process, so on its default device with TF32 off:
    bits/dim, latents, decodes, a T = 0.7 sample and the classifier logits of every reference set."""
    import pytest  # noqa: PLC0415

    outcomes = _Outcomes()
    with contextlib.redirect_stdout(sys.stderr):
        # -n 0: in this process, not on pytest.ini's two xdist workers
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-n", "0", "--rootdir", REPO, REFERENCE_TESTS],
                           plugins=[outcomes])
    if code != 0 or outcomes.failed or not outcomes.passed:
        raise RuntimeError(f"pytest exited {int(code)}; failed: {outcomes.failed or 'none'}; "
                           f"{len(outcomes.passed)} passed")
    return {"device": _default_device(), "tests_passed": len(outcomes.passed), "atol": 1e-4}


def train_epoch_part(quick):
    """train.py for one epoch on digits, in this process; the test loss is logged after init and after it."""
    import train  # noqa: PLC0415

    logdir = tempfile.mkdtemp(prefix="glow_acceptance_")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            train.main([*DIGITS_FLAGS, *DIGITS_MODEL[quick], "--logdir", logdir])
        test = _json_lines(os.path.join(logdir, "test.txt"))
        train_lines = _json_lines(os.path.join(logdir, "train.txt"))
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    losses = {int(line["epoch"]): float(line["loss"]) for line in test}
    if sorted(losses) != [0, 1] or len(train_lines) != 1:
        raise RuntimeError(f"expected test losses for epochs 0 and 1 and one train line; got test epochs "
                           f"{sorted(losses)} and {len(train_lines)} train lines")
    if not losses[1] < losses[0]:
        raise RuntimeError(f"test loss did not fall: {losses[0]} after init, {losses[1]} after one epoch")
    return {"device": _default_device(), "test_loss_after_init": losses[0], "test_loss_after_epoch": losses[1],
            "train_loss": float(train_lines[0]["loss"])}


def train_speed_part(gpus):
    if not gpus:
        raise Skip("no GPU; bench/train_speed.py measures the CPU")
    import common  # noqa: PLC0415 (bench/common.py: the benchmark configurations and step)

    result = {}
    for name in ("bench", "cifar10"):
        for jit in (False, True):
            # gradient checkpointing on, train.py's default (what lets the CIFAR-10 batch fit)
            _, _, step, (x, y, lr) = common.our_train_step(common.CONFIGS[name], SPEED_BATCH, jit=jit, ckpt=True)
            counter = tf.Variable(0, dtype=tf.int64)

            def run():
                stats, _, finite = step(x, y, lr, counter)
                counter.assign_add(1)
                return bool(finite) and np.all(np.isfinite(stats.numpy()))

            for _ in range(3):  # trace, compile, warm up
                run()
            times = []
            for _ in range(SPEED_STEPS):
                t0 = time.perf_counter()
                if not run():
                    raise RuntimeError(f"{name} (jit={jit}): a step was not finite")
                times.append(time.perf_counter() - t0)
            result[f"{name}{'_xla' if jit else ''}_images_per_s"] = round(SPEED_BATCH / statistics.median(times), 1)
    result["batch"] = SPEED_BATCH
    return result


def sampling_part(gpus):
    if not gpus:
        raise Skip("no GPU; bench/sample_speed.py measures the CPU")
    import common  # noqa: PLC0415

    from glow_tf import Glow, GlowConfig  # noqa: PLC0415
    from glow_tf.training import make_sampler  # noqa: PLC0415

    glow = Glow(GlowConfig(**common.CONFIGS["celeba"]), seed=0)
    sample = make_sampler(glow, seed=0)
    y, temperature = tf.zeros([1], tf.int32), tf.constant(0.7)
    sample(y, temperature, tf.constant(0, tf.int64)).numpy()  # trace
    times = []
    for i in range(1, 6):
        t0 = time.perf_counter()
        sample(y, temperature, tf.constant(i, tf.int64)).numpy()
        times.append(time.perf_counter() - t0)
    params = sum(int(np.prod(v.shape)) for v in glow.trainable_variables)
    return {"seconds_batch1": round(statistics.median(times), 3), "parameters": params}


def memory_part(gpus):
    if not gpus:
        raise Skip("no GPU")
    return {"peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}


def horovod_part(gpus):
    """`horovodrun -np 1` running one allreduce on the GPU, with the NCCL build."""
    if not gpus:
        raise Skip("no GPU; the NCCL build is checked by `horovodrun --check-build` at image build time")
    horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or shutil.which("horovodrun")
    if horovodrun is None:
        raise RuntimeError("horovodrun not found; run scripts/install.sh")
    proc = subprocess.run([horovodrun, "-np", "1", "-H", "localhost:1", "--gloo", sys.executable, "-c", HOROVOD_CHECK],
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if "ALLREDUCE" in line]
    if proc.returncode != 0 or len(lines) != 1:
        raise RuntimeError(f"horovodrun exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    result = json.loads(lines[0].split("ALLREDUCE", 1)[1])
    if "GPU" not in result["device"] or result["sum"] != [1.0, 2.0] or result["nccl_version_code"] == 0:
        raise RuntimeError(f"expected the sum [1.0, 2.0] on a GPU from an NCCL build; got {result}")
    return result


def _default_device():
    return tf.constant(0.0).device.rsplit("/", 1)[-1].replace("device:", "")


def _json_lines(path):
    """The epoch lines of a train.txt/test.txt (the first line holds the hyper-parameters)."""
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines()[1:] if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller digits model for the epoch (CI)")
    args = parser.parse_args(argv)
    from glow_tf.distributed import Distributed  # noqa: PLC0415

    tf.config.experimental.enable_tensor_float_32_execution(False)  # the reference needs float32 matmuls
    # GPU 0 only, with memory growth, as train.py pins a worker (its own pin_gpu call is then a no-op).
    gpus = [gpu] if (gpu := Distributed().pin_gpu()) else []
    report = {"quick": args.quick, "tensorflow": tf.__version__}
    report["gpu"] = run_part("gpu", gpu_part, gpus)
    report["libraries"] = run_part("libraries", libraries_part, gpus)
    report["reference"] = run_part("reference", reference_part)
    report["train_epoch"] = run_part("train_epoch", train_epoch_part, args.quick)
    report["train_speed"] = run_part("train_speed", train_speed_part, gpus)
    report["sampling"] = run_part("sampling", sampling_part, gpus)
    report["memory"] = run_part("memory", memory_part, gpus)
    report["horovod"] = run_part("horovod", horovod_part, gpus)
    parts = [v for v in report.values() if isinstance(v, dict)]
    report["passed"] = not any(p["status"] == "failed" for p in parts)
    print(json.dumps(report, default=str))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
