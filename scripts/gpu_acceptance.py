"""One-shot acceptance run of a GPU machine (or container) for glow-tf; prints one JSON object.

    python scripts/gpu_acceptance.py [--quick] [--output FILE]   (scripts/gpu_acceptance.sh picks the interpreter)

Parts, in order, each reported as {"status": "passed" | "failed" | "skipped", "seconds", ...}:
  gpu          TensorFlow sees a GPU (its name and compute capability)
  libraries    the CUDA runtime, cuDNN and NCCL loaded are at least TensorFlow's/Horovod's build versions;
               the newest CUDA version the driver supports
  reference    tests/test_original_reference.py in this process: the original release's reference vectors
               reproduced to 1e-4 on the default device (the GPU), TF32 off for this part only
  train_epoch  one train.py epoch on digits; the test loss after it is below the one after the init
  train_speed  images/s of the training step, bench and CIFAR-10 configurations, without and with XLA,
               with TF32 as training has it (TensorFlow's default: on, on Ampere and newer)
  sampling     CelebA-HQ (256px, 6 levels, depth 32) sampling latency at batch 1, T = 0.7
  memory       peak GPU memory over the run
  horovod      `horovodrun -np 1` with a GPU allreduce through the NCCL build
  multi_gpu    every GPU of the machine through `horovodrun -np N` against one process: the same losses
               for the same global batch over 3 steps (the data-dependent init over every worker's
               batch, TF32 off), then the training images/s of N workers against one at 64 images per
               GPU (TF32 as training has it) and the scaling efficiency; /dev/shm's size (NCCL's shared
               memory between the GPUs: `docker run --ipc host` or `--shm-size`)
On a machine without a GPU the GPU parts are "skipped" with the reason, the others run on the CPU
(`--multi_cpu N` runs the multi_gpu part with N CPU workers over Gloo instead: the tests' way to run it).
Each part has a time limit (PART_TIME_LIMITS, or --part_time_limit for all) past which it is "failed".
"passed" at the top is true when no part failed. The JSON is also written to --output (default
gpu_acceptance.json in the working directory); stdout carries nothing else (everything else the
parts print goes to stderr). About 10 minutes on one modern GPU (XLA compiles of the CIFAR-10 step
take most of it), a few more with several GPUs; --quick shrinks the CPU parts to well under a minute.
Exit status: 0 when passed, 1 otherwise.
"""
import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
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
# Seconds each part may take (--part_time_limit overrides them all); past it the part has failed.
PART_TIME_LIMITS = {"gpu": 120, "libraries": 120, "reference": 1200, "train_epoch": 1200, "train_speed": 1800,
                    "sampling": 900, "memory": 60, "horovod": 300, "multi_gpu": 1800}
# multi_gpu: images per worker of the compared steps, steps compared, relative tolerance of the losses,
# and the timed steps (the scaling figure) per worker.
COMPARE_BATCH = 4
COMPARE_STEPS = 3
COMPARE_RTOL = 1e-4
SCALING_STEPS = 10
SHM_ADVISED = 1 << 30  # /dev/shm below this: NCCL's shared-memory transport may fail between GPUs
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


class PartTimeout(BaseException):
    """Raised in the main thread when a part outlives its time limit. A BaseException, so that library
    code which catches Exception to re-raise it wrapped (tf.Module's attribute walk does) lets it by."""


def _alarm(signum, frame):
    raise PartTimeout()


def run_part(name, fn, *args, limit=None):
    """{"status", "seconds", ...fn's result}: passed, skipped (Skip) or failed (any other exception, or
    more than `limit` seconds: SIGALRM interrupts the part at its next Python instruction)."""
    log(f"{name} ...")
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    if limit:
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        result = {"status": "passed", **(fn(*args) or {})}
    except Skip as e:
        result = {"status": "skipped", "reason": str(e)}
    except PartTimeout:
        result = {"status": "failed", "error": f"exceeded its time limit of {limit} s"}
    except Exception as e:  # noqa: BLE001 (every failure is reported in the JSON, the run goes on)
        result = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc(limit=-3)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    result["seconds"] = round(time.perf_counter() - start, 1)
    if limit and result["status"] != "skipped" and time.perf_counter() - start > limit:
        # The clock decides, not the exception: the alarm's can land where Python only prints and drops
        # it (a finaliser, a callback out of TensorFlow's C++), or be caught by library code and
        # re-raised as another error (tf.Module's attribute walk wraps any Exception in a ValueError).
        result = {"status": "failed", "error": f"exceeded its time limit of {limit} s",
                  "seconds": result["seconds"]}
    log(f"{name}: {result['status']} ({result['seconds']} s)")
    return result


@contextlib.contextmanager
def tf32(enabled):
    """TensorFloat-32 matmuls and convolutions on (TensorFlow's default) or off within the block."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(enabled)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


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
    with contextlib.redirect_stdout(sys.stderr), tf32(False):  # the reference needs float32 matmuls
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
    result["tf32"] = tf.config.experimental.tensor_float_32_execution_enabled()
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


def multi_gpu_part(gpus, cpu_workers, quick):
    """Every GPU through horovodrun against one process (see the module docstring); with `cpu_workers`,
    that many CPU workers over Gloo instead (the machinery, where there is no GPU)."""
    if cpu_workers:
        workers, device = cpu_workers, "CPU"
    else:
        if len(gpus) < 2:
            raise Skip(f"needs 2 or more GPUs; TensorFlow sees {len(gpus)}" if gpus else
                       "no GPU; --multi_cpu N runs this part with N CPU workers")
        workers, device = len(gpus), "GPU"
    horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or shutil.which("horovodrun")
    if horovodrun is None:
        raise RuntimeError("horovodrun not found; run scripts/install.sh")
    shm = _shm_bytes()
    # the bench configuration on GPUs; on CPU workers (a check of the machinery) the tiny one
    spec = {"global_batch": COMPARE_BATCH * workers, "scaling_batch": 4 if quick or cpu_workers else SPEED_BATCH,
            "device": device, "config": "quick" if cpu_workers else "bench"}
    one = _multi_run(horovodrun, 1, spec)
    many = _multi_run(horovodrun, workers, spec, shm)
    losses_one, losses_many = np.array(one["losses"]), np.array(many["losses"])
    rel = float(np.max(np.abs(losses_many - losses_one) / np.abs(losses_one)))
    result = {"workers": workers, "device": device, "config": spec["config"], "global_batch": spec["global_batch"],
              "losses_one_process": one["losses"], "losses_workers": many["losses"], "max_relative_difference": rel,
              "scaling_batch_per_worker": spec["scaling_batch"], "images_per_s_one": one["images_per_s"],
              "images_per_s_workers": many["images_per_s"],
              "scaling_efficiency": round(many["images_per_s"] / (workers * one["images_per_s"]), 3),
              "tf32_in_scaling": many["tf32"], "nccl_built": many["nccl_built"], "shm_bytes": shm}
    if shm is not None and shm < SHM_ADVISED:
        result["warning"] = (f"/dev/shm has {shm >> 20} MiB; NCCL may fail between the GPUs of this machine: "
                             f"start the container with --ipc host or --shm-size 8g")
    if device == "GPU" and not many["nccl_built"]:
        raise RuntimeError(f"Horovod was built without NCCL: its GPU allreduces go through the CPU ({result})")
    if not rel <= COMPARE_RTOL:
        raise RuntimeError(f"{workers} workers and one process disagree on the losses of the same global batch "
                           f"(largest relative difference {rel:.2e} > {COMPARE_RTOL}): {result}")
    return result


def _shm_bytes():
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return stat.f_frsize * stat.f_blocks


def _multi_run(horovodrun, workers, spec, shm=None):
    """horovodrun -np `workers` of this script's --multi_worker mode; rank 0's results."""
    with tempfile.TemporaryDirectory(prefix="glow_acceptance_") as out:
        path = os.path.join(out, "rank0.json")
        env = dict(os.environ)
        if spec["device"] == "CPU":  # one thread per worker, GPUs hidden: the CPU stand-in of the GPU run
            env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
                       TF_NUM_INTEROP_THREADS="1")
        cmd = [horovodrun, "-np", str(workers), "-H", f"localhost:{workers}", "--gloo", sys.executable,
               os.path.abspath(__file__), "--multi_worker", json.dumps({**spec, "output": path})]
        # its own process group: a part stopped by its time limit takes the workers down with horovodrun
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        output = ""
        try:
            output = proc.communicate()[0]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0 or not os.path.exists(path):
            hint = (f" /dev/shm has only {shm >> 20} MiB: start the container with --ipc host or --shm-size 8g."
                    if shm is not None and shm < SHM_ADVISED else "")
            raise RuntimeError(f"horovodrun -np {workers} exited {proc.returncode}:{hint} {output[-2000:]}")
        with open(path) as f:
            return json.load(f)


def multi_worker(spec_json):
    """One worker of the multi_gpu part (started by horovodrun): its share of a fixed global batch for
    COMPARE_STEPS steps with fixed noise, then SCALING_STEPS timed steps; rank 0 writes the results."""
    import common  # noqa: PLC0415 (bench/common.py)

    from glow_tf import Glow, GlowConfig  # noqa: PLC0415
    from glow_tf.distributed import Distributed  # noqa: PLC0415
    from glow_tf.optim import Optimizer  # noqa: PLC0415
    from glow_tf.training import make_train_step  # noqa: PLC0415

    spec = json.loads(spec_json)
    dist = Distributed()
    dist.pin_gpu()
    config = GlowConfig(**common.CONFIGS[spec["config"]])
    n = spec["global_batch"]
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, size=(n, config.image_size, config.image_size, 3)).astype(np.uint8)
    noise = rng.uniform(0, 1 / 256, size=(COMPARE_STEPS + 1, *x.shape)).astype(np.float32)
    share = n // dist.size
    mine = slice(dist.rank * share, (dist.rank + 1) * share)
    y = tf.zeros([share], tf.int32)
    losses = []
    with tf32(False):
        glow = Glow(config, seed=0)
        with dist.allreduced_actnorm_init():  # the init on the whole global batch, on every worker
            glow.initialize(x[mine], noise=noise[0][mine])
        optimizer = Optimizer(glow.trainable_variables, beta2=0.999)
        step = make_train_step(glow, optimizer, dist, seed=0)
        for i in range(COMPARE_STEPS):
            stats, _, finite = step(tf.constant(x[mine]), y, tf.constant(1e-3), tf.constant(i, tf.int64),
                                    noise=tf.constant(noise[i + 1][mine]))
            losses.append(float(stats[0]) if bool(finite) else float("nan"))
    # the scaling figure: a fresh step at the per-worker batch, TF32 as training has it
    batch = spec["scaling_batch"]
    xs = tf.constant(rng.randint(0, 256, size=(batch, config.image_size, config.image_size, 3)).astype(np.uint8))
    ys, lr, counter = tf.zeros([batch], tf.int32), tf.constant(1e-4), tf.Variable(0, dtype=tf.int64)
    times = []
    for i in range(3 + SCALING_STEPS):
        t0 = time.perf_counter()
        step(xs, ys, lr, counter)[0].numpy()
        counter.assign_add(1)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if dist.is_chief:
        from glow_tf.io import atomic_write_text  # noqa: PLC0415

        result = {"losses": losses, "images_per_s": round(dist.size * batch / statistics.median(times), 2),
                  "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
                  "nccl_built": int(dist.hvd.nccl_built()) if dist.hvd else 0}
        atomic_write_text(spec["output"], json.dumps(result))


def _default_device():
    return tf.constant(0.0).device.rsplit("/", 1)[-1].replace("device:", "")


def _json_lines(path):
    """The epoch lines of a train.txt/test.txt (the first line holds the hyper-parameters)."""
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines()[1:] if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller digits model for the epoch (CI)")
    parser.add_argument("--output", default=os.environ.get("GLOW_ACCEPTANCE_OUTPUT", "gpu_acceptance.json"),
                        help="the JSON report is also written here (default gpu_acceptance.json; in Docker, a "
                             "mounted folder, e.g. /logs/gpu_acceptance.json)")
    parser.add_argument("--part_time_limit", type=float, default=None,
                        help="seconds every part may take (default: each part's own, PART_TIME_LIMITS)")
    parser.add_argument("--multi_cpu", type=int, default=0,
                        help="run the multi_gpu part with this many CPU workers over Gloo (where there is no GPU)")
    parser.add_argument("--parts", nargs="+", choices=list(PART_TIME_LIMITS), default=list(PART_TIME_LIMITS),
                        metavar="PART", help=f"run only these parts (default all: {' '.join(PART_TIME_LIMITS)})")
    parser.add_argument("--multi_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.multi_worker:
        return multi_worker(args.multi_worker)
    if args.multi_cpu == 1 or args.multi_cpu < 0:
        parser.error(f"--multi_cpu {args.multi_cpu}: expected 0 (GPUs) or at least 2 workers")
    # stdout is the report's alone: whatever the parts (or libraries underneath) print goes to stderr.
    report_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from glow_tf.distributed import Distributed  # noqa: PLC0415
    from glow_tf.io import atomic_write_text  # noqa: PLC0415

    # GPU 0 only, with memory growth, as train.py pins a worker (its own pin_gpu call is then a no-op).
    all_gpus = tf.config.list_physical_devices("GPU")
    gpus = [gpu] if (gpu := Distributed().pin_gpu()) else []
    report = {"quick": args.quick, "tensorflow": tf.__version__}
    parts = {"gpu": (gpu_part, gpus), "libraries": (libraries_part, gpus), "reference": (reference_part,),
             "train_epoch": (train_epoch_part, args.quick), "train_speed": (train_speed_part, gpus),
             "sampling": (sampling_part, gpus), "memory": (memory_part, gpus), "horovod": (horovod_part, gpus),
             "multi_gpu": (multi_gpu_part, all_gpus, args.multi_cpu, args.quick)}
    for name, (fn, *fn_args) in parts.items():
        if name in args.parts:
            report[name] = run_part(name, fn, *fn_args, limit=args.part_time_limit or PART_TIME_LIMITS[name])
    parts = [v for v in report.values() if isinstance(v, dict)]
    report["passed"] = not any(p["status"] == "failed" for p in parts)
    try:
        atomic_write_text(args.output, json.dumps(report, default=str) + "\n")
        log(f"report written to {os.path.abspath(args.output)}")
    except OSError as e:
        log(f"could not write the report to {args.output}: {e}")
        report["passed"] = False
    print(json.dumps(report, default=str), file=report_stream, flush=True)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
