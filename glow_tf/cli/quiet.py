"""Quietens TensorFlow's start-up lines for the command-line programs (train.py, sample.py,
`python -m glow_tf`, `glow-tf`) and the test suite; a library import never does this.

Importing TensorFlow on a machine without a GPU prints lines from its C++ runtime that look like failures
but are not (cuDNN/cuFFT/cuBLAS "Unable to register ... factory", "failed call to cuInit", the CPU-instruction
and oneDNN notices). They bypass sys.stderr and TF_CPP_MIN_LOG_LEVEL (the E0000 lines are written before
absl's logging starts), so `import_tensorflow_quietly()` points file descriptor 2 at a temporary file while
TensorFlow loads and finds its devices, then writes back every captured line except those on the exact list
below. GLOW_TF_VERBOSE=1 shows everything; nothing is captured when TensorFlow is already loaded.

This module imports nothing heavy: a program calls it first, before anything imports TensorFlow
(`import glow_tf` does not: the package loads its modules on first use).
"""
import os
import re
import sys
import tempfile

_GLOG_LINE = re.compile(r"(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} [\d:.]+ +\d+ )"
                         r"(?:\S*/)?(?P<file>[\w.]+\.cc):\d+\] (?P<message>.*)")
_BENIGN_LOGS = {  # source file -> message, as TensorFlow 2.18 prints them without a GPU
    "port.cc": r"oneDNN custom operations are on\. You may see slightly different numerical results due to "
               r"floating-point round-off errors from different computation orders\. To turn them off, set the "
               r"environment variable `TF_ENABLE_ONEDNN_OPTS=0`\.",
    "cudart_stub.cc": r"Could not find cuda drivers on your machine, GPU will not be used\.",
    "cpu_feature_guard.cc": r"This TensorFlow binary is optimized to use available CPU instructions in "
                            r"performance-critical operations\.",
    **{file: rf"Unable to register {lib} factory: Attempting to register factory for plugin {lib} when one has "
             rf"already been registered" for file, lib in (("cuda_fft.cc", "cuFFT"), ("cuda_dnn.cc", "cuDNN"),
                                                         ("cuda_blas.cc", "cuBLAS"))},
}
_BENIGN_LOGS_WITHOUT_GPU = {"cuda_driver.cc": r"failed call to cuInit: .*"}  # a real error where a GPU exists
_BENIGN_LINES = (r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
                 r"To enable the following instructions: [A-Z0-9_ ]+, in other operations, rebuild TensorFlow "
                 r"with the appropriate compiler flags\.")


def _is_benign_tf_line(line, has_gpu):
    """True for a line of the exact allow-list of harmless TensorFlow start-up messages."""
    line = line.rstrip("\r\n")
    if any(re.fullmatch(pattern, line) for pattern in _BENIGN_LINES):
        return True
    match = _GLOG_LINE.fullmatch(line)
    if not match:
        return False
    pattern = _BENIGN_LOGS.get(match["file"]) or (None if has_gpu else _BENIGN_LOGS_WITHOUT_GPU.get(match["file"]))
    return pattern is not None and re.fullmatch(pattern, match["message"]) is not None


def drop_benign_lines(text, has_gpu=False):
    """text without the allow-listed lines; every other line is kept, in order."""
    return "".join(line for line in text.splitlines(keepends=True) if not _is_benign_tf_line(line, has_gpu))


def import_tensorflow_quietly():
    """Imports TensorFlow with its harmless start-up lines dropped (see the module docstring)."""
    verbose = os.environ.get("GLOW_TF_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")
    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401, PLC0415
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable file descriptor 2: nothing to capture
        import tensorflow  # noqa: F401, PLC0415
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: PLC0415
            tensorflow.config.list_physical_devices()  # finds the devices (cuInit) without starting the runtime
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            kept = drop_benign_lines(capture.read().decode("utf-8", "replace"),
                                     has_gpu=os.path.exists("/dev/nvidiactl"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
