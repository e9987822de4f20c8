"""glow_tf.cli.quiet: the programs (train.py, sample.py, python -m glow_tf, glow-tf) and the test suite import
TensorFlow without its harmless start-up lines; `import glow_tf`, a library import, touches no file
descriptor and imports no TensorFlow."""
import os
import subprocess
import sys

from glow_tf.cli import quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a launch as a user makes it: the repository's package, no GPU, TensorFlow's own log level untouched
ENV = {**{k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOW_TF_VERBOSE")},
       "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
REAL_ERROR = "E0000 00:00:1.0 1 some_kernel.cc:1] a real error\n"

BENIGN = [
    "2026-12-01 20:14:43.867104: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:477] Unable to register "
    "cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "E0000 00:00:1796156083.883438    7609 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "E0000 00:00:1796156083.888075    7609 cuda_blas.cc:1418] Unable to register cuBLAS factory: Attempting to "
    "register factory for plugin cuBLAS when one has already been registered",
    "2026-12-01 20:14:43.903794: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "2026-12-01 20:14:43.855289: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers "
    "on your machine, GPU will not be used.",
]
CUINIT = ("2026-12-01 20:14:47.981009: E external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:152] failed "
          "call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
REAL = [
    "E0000 00:00:1796156083.888075    7609 cuda_blas.cc:1418] Unable to register cuBLAS factory: out of memory",
    "2026-12-01 20:14:43.867104: E tensorflow/core/framework/op_kernel.cc:1840] OP_REQUIRES failed: bad shape",
    "Traceback (most recent call last):",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR and more",
    "Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been "
    "registered",  # the message without TensorFlow's log prefix is not TensorFlow's line
]


def test_filter_drops_exactly_the_allow_list_and_keeps_the_rest_in_order():
    text = "\n".join([BENIGN[0], REAL[0], *BENIGN[1:4], REAL[1], CUINIT, *BENIGN[4:], *REAL[2:]]) + "\n"
    assert quiet.drop_benign_lines(text, has_gpu=False) == "\n".join(REAL) + "\n"
    # where a GPU exists, a failing cuInit is a real error
    assert quiet.drop_benign_lines(text, has_gpu=True) == "\n".join([*REAL[:2], CUINIT, *REAL[2:]]) + "\n"
    assert quiet.drop_benign_lines("partial line without newline", has_gpu=False) == "partial line without newline"


def test_a_second_import_does_not_capture(monkeypatch):
    assert "tensorflow" in sys.modules  # conftest.py imported it quietly

    def refuse(*_):
        raise AssertionError("file descriptor 2 was touched although TensorFlow was already imported")
    with monkeypatch.context() as patched:  # undone before pytest's own capturing moves descriptors again
        patched.setattr(os, "dup", refuse)
        patched.setattr(os, "dup2", refuse)
        quiet.import_tensorflow_quietly()


def _launch(code):
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_quiet_import_prints_nothing_on_this_cpu_machine_but_real_errors_pass():
    """One launch: the quiet import writes nothing to stderr; a line TensorFlow's C++ writes to file
    descriptor 2 afterwards still reaches stderr."""
    code = ("import os; from glow_tf.cli.quiet import import_tensorflow_quietly; import_tensorflow_quietly(); "
            "import glow_tf, tensorflow as tf; glow_tf.Glow; tf.constant(1.0) + 1; "
            f"os.write(2, {REAL_ERROR.encode()!r})")
    assert _launch(code) == REAL_ERROR


def test_import_glow_tf_touches_no_file_descriptor_and_imports_no_tensorflow():
    """`import glow_tf` with os.dup and os.dup2 refused: it imports, loads no TensorFlow, and its first
    use (the model class) imports TensorFlow, whose own start-up lines then reach stderr untouched."""
    code = ("import os, sys\n"
            "def refuse(*args): raise AssertionError('a file descriptor was touched')\n"
            "os.dup = os.dup2 = refuse\n"
            "import glow_tf\n"
            "assert 'tensorflow' not in sys.modules, 'import glow_tf imported TensorFlow'\n"
            "glow_tf.Glow, glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=4)\n"
            "assert 'tensorflow' in sys.modules\n"
            f"os.write(2, {REAL_ERROR.encode()!r})\n")
    stderr = _launch(code)
    assert stderr.endswith(REAL_ERROR), stderr
    # on a machine without a GPU TensorFlow 2.18 announces itself: those lines were not captured
    assert ("Unable to register cuDNN factory" in stderr) == ("Unable to register cuDNN factory" in _launch(
        "import tensorflow"))


def test_programs_print_nothing_but_their_own_output():
    """sample.py and `python -m glow_tf` quieten TensorFlow's start-up lines: their --help writes nothing to
    stderr (TensorFlow is loaded before the parser runs)."""
    for argv in (["sample.py", "encode", "--help"], ["-m", "glow_tf", "export", "--help"]):
        proc = subprocess.run([sys.executable, *argv], env=ENV, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0 and proc.stderr == "", (argv, proc.stderr)
        assert "--logdir" in proc.stdout
