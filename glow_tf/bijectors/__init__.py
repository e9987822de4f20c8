"""The invertible layers of Glow, one per module, each named for the paper's box; `networks` holds
the non-invertible networks they use (the coupling network f, the zero-initialised convolutions)."""
from glow_tf.bijectors.actnorm import ActNorm
from glow_tf.bijectors.base import FlowBijector, data_dependent_init
from glow_tf.bijectors.coupling import AdditiveCoupling, AffineCoupling
from glow_tf.bijectors.invertible_conv import InvertibleConv1x1, InvertibleConv1x1LU
from glow_tf.bijectors.permutations import ReverseChannels, ShuffleChannels
from glow_tf.bijectors.split import Split
from glow_tf.bijectors.squeeze import Squeeze, squeeze2d, unsqueeze2d
from glow_tf.bijectors.top_prior import TopPrior

__all__ = ["ActNorm", "AdditiveCoupling", "AffineCoupling", "FlowBijector", "InvertibleConv1x1",
           "InvertibleConv1x1LU", "ReverseChannels", "ShuffleChannels", "Split", "Squeeze", "TopPrior",
           "data_dependent_init", "squeeze2d", "unsqueeze2d"]
