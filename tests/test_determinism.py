"""train.py --deterministic 1 (glow_tf/determinism.py): TensorFlow's op determinism is on in the training
process, XLA's GPU switch is set before it compiles, and the default changes nothing. Each case runs
in its own process: op determinism cannot be switched off once on."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
# train.main as `python train.py` runs it, then what the process ended with.
PROBE = """
import os, sys
import train
train.main(sys.argv[1:])
from glow_tf.determinism import determinism_enabled
print("PROBE", determinism_enabled(), os.environ.get("XLA_FLAGS", ""), flush=True)
"""


def _train(tmp_path, *flags, env=None):
    result = subprocess.run([sys.executable, "-c", PROBE, "--config", "tiny", "--epochs", "1", "--progress", "off",
                             "--logdir", str(tmp_path / "run"), *flags], capture_output=True, text=True, cwd=REPO,
                            env={**ENV, **(env or {})}, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    probe = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert len(probe) == 1, result.stdout[-2000:]
    _, enabled, xla_flags = (probe[0] + " ").split(" ", 2)
    return enabled == "True", xla_flags.strip()


def test_deterministic_1_turns_op_determinism_on_and_keeps_the_users_xla_flags(tmp_path):
    enabled, xla_flags = _train(tmp_path, "--deterministic", "1", env={"XLA_FLAGS": "--xla_dump_to=/dev/null"})
    assert enabled
    assert xla_flags.split() == ["--xla_dump_to=/dev/null", "--xla_gpu_deterministic_ops=true"]


def test_by_default_training_keeps_tensorflows_fastest_kernels(tmp_path):
    enabled, xla_flags = _train(tmp_path, env={"XLA_FLAGS": ""})
    assert not enabled and xla_flags == ""


def test_a_bad_value_is_one_argparse_line():
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--deterministic", "2"],
                            capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert result.returncode == 2
    assert "argument --deterministic: invalid choice: 2 (choose from 0, 1)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
