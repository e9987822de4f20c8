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
from glow_tf.checkpoint import find_checkpoint, load_original_checkpoint, load_run, original_variable_map
from glow_tf.config import COUPLINGS, PERMUTATIONS, GlowConfig
from glow_tf.model import FlowStep, Glow, GlowBijector

__all__ = ["Glow", "GlowConfig", "GlowBijector", "FlowStep", "load_original_checkpoint", "load_run", "find_checkpoint",
           "original_variable_map", "PERMUTATIONS", "COUPLINGS"]
