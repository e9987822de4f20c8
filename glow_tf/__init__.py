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

# The names below are loaded on first use (PEP 562), so `import glow_tf` itself imports no TensorFlow and
# touches no file descriptor; a program that wants TensorFlow's start-up lines quietened calls
# glow_tf.cli.quiet.import_tensorflow_quietly() first (train.py, sample.py and the glow-tf command do).
from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec

_PUBLIC = {  # name -> the module defining it
    "find_checkpoint": "glow_tf.checkpoint", "load_original_checkpoint": "glow_tf.checkpoint",
    "load_run": "glow_tf.checkpoint", "original_variable_map": "glow_tf.checkpoint",
    "COUPLINGS": "glow_tf.config", "PERMUTATIONS": "glow_tf.config", "GlowConfig": "glow_tf.config",
    "FlowStep": "glow_tf.model", "Glow": "glow_tf.model", "GlowBijector": "glow_tf.model",
}
__all__ = list(_PUBLIC)


def __getattr__(name):
    """A public name (imported from its module on first use), or a submodule such as glow_tf.latents."""
    if name in _PUBLIC:
        value = getattr(_import_module(_PUBLIC[name]), name)
    elif not name.startswith("_") and _find_spec(f"{__name__}.{name}") is not None:
        value = _import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
