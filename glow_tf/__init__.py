"""glow-tf: OpenAI's Glow (Kingma & Dhariwal 2018) in TensorFlow 2, numerically equal to openai/glow.

Direction convention (TFP's, stated once for the whole package): a bijector's `forward` maps latent
to image (decoding, sampling) and its `inverse` maps image to latent (encoding; the original's
`reverse=False` branch). So `tfd.TransformedDistribution(base, glow.bijector())` samples images.
Every bijector here also offers `encode(x) -> (z, log_det)` and `decode(z) -> (x, log_det)`, the
two directions side by side.

Public API:
  GlowConfig               the hyper-parameters, with the original's flag names
  Glow                     the model; its public methods (NumPy in and out: encode, decode, sample,
                           reconstruct, mix, interpolate, manipulate, project) are the latent API,
                           its graph-level ones (objective, initialize, ...) serve training and TFP
  glow_tf.latents          the flat latent layout, temperatures, seeds and latent .npz files
  glow_tf.directions       attribute directions: from labelled latents, moving and projecting, files
  load_original_checkpoint a Glow holding the weights of an original TF1 checkpoint

Names, original -> here: revnet2d_step -> FlowStep; actnorm -> ActNorm; invertible_1x1_conv ->
InvertibleConv1x1 (LU: InvertibleConv1x1LU); reverse_features / shuffle_features ->
ReverseChannels / ShuffleChannels; f -> CouplingNetwork; squeeze2d -> Squeeze; split2d +
split2d_prior -> Split; prior -> TopPrior; hps -> GlowConfig; eps -> eps (standardised latents).
"""

# --- Import TensorFlow quietly ------------------------------------------------------------------------------
# Importing TensorFlow on a machine without a GPU prints lines from its C++ runtime that look like failures
# but are not (cuDNN/cuFFT/cuBLAS "Unable to register ... factory", "failed call to cuInit", the CPU-instruction
# and oneDNN notices). They bypass sys.stderr, so file descriptor 2 is pointed at a temporary file while
# TensorFlow loads and finds its devices; afterwards every captured line is written back except those on the
# exact list below. GLOW_TF_VERBOSE=1 shows everything; nothing is captured when TensorFlow is already loaded.
import os as _os
import re as _re
import sys as _sys

_GLOG_LINE = _re.compile(r"(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} [\d:.]+ +\d+ )"
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
    if any(_re.fullmatch(pattern, line) for pattern in _BENIGN_LINES):
        return True
    match = _GLOG_LINE.fullmatch(line)
    if not match:
        return False
    pattern = _BENIGN_LOGS.get(match["file"]) or (None if has_gpu else _BENIGN_LOGS_WITHOUT_GPU.get(match["file"]))
    return pattern is not None and _re.fullmatch(pattern, match["message"]) is not None


def _drop_benign_tf_lines(text, has_gpu=False):
    """text without the allow-listed lines; every other line is kept, in order."""
    return "".join(line for line in text.splitlines(keepends=True) if not _is_benign_tf_line(line, has_gpu))


def _import_tensorflow_quietly():
    verbose = _os.environ.get("GLOW_TF_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")
    if verbose or "tensorflow" in _sys.modules:
        import tensorflow  # noqa: F401
        return
    import tempfile
    try:
        _sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable file descriptor 2: nothing to capture
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as capture:
        _os.dup2(capture.fileno(), 2)
        try:
            import tensorflow
            tensorflow.config.list_physical_devices()  # finds the devices (cuInit) without starting the runtime
        finally:
            try:
                _sys.stderr.flush()
            finally:
                _os.dup2(saved, 2)
                _os.close(saved)
            capture.seek(0)
            kept = _drop_benign_tf_lines(capture.read().decode("utf-8", "replace"),
                                         has_gpu=_os.path.exists("/dev/nvidiactl"))
            if kept:
                _sys.stderr.write(kept)
                _sys.stderr.flush()


_import_tensorflow_quietly()
# ------------------------------------------------------------------------------------------------------------

from glow_tf.checkpoint import find_checkpoint, load_original_checkpoint, load_run, original_variable_map
from glow_tf.config import COUPLINGS, PERMUTATIONS, GlowConfig
from glow_tf.model import FlowStep, Glow, GlowBijector

__all__ = ["Glow", "GlowConfig", "GlowBijector", "FlowStep", "load_original_checkpoint", "load_run", "find_checkpoint",
           "original_variable_map", "PERMUTATIONS", "COUPLINGS"]
