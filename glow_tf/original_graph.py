"""OpenAI's published CelebA-HQ Glow (a frozen TF1 GraphDef, `graph_unoptimized.pb`) run in TensorFlow 2,
with the latent API of `glow_tf.Glow`, so that the command line and the demo use either.

The original demo (openai/glow demo/model.py, `optimized = False`) imports the graph and feeds and
fetches tensors by name; this backend does the same, in TensorFlow 2, through
`tf.compat.v1.wrap_function` + `import_graph_def`, pruned into two concrete functions:

  encode: `input/image` uint8 [N, S, S, 3], `input/downsampled_image` uint8 [N, S/2, S/2, 3] (the
          constant 128, as the demo), `input/label` int32 [N] (0, as the demo), and the dequantisation
          noise (see below) -> `model/pool0/truediv_1` ... `model/pool{L-2}/truediv_1`, `model/truediv_4`
  decode: `Placeholder`, `Placeholder_1`, ... `Placeholder_{L-1}` (the L levels' eps) and `input/label`
          -> `model_1/Cast_1` uint8 [N, S, S, 3]

S, L and the eps shapes are read from the graph's placeholders (the published file: S = 256, L = 6).
Latents are flat float32 [N, D], levels concatenated as `glow_tf.latents` (the demo's flatten_eps).

Dequantisation noise: the graph draws its own U(0, 1/n_bins) noise (the original's encoder). When
the graph holds that op under the original's name (`model/random_uniform`, TensorFlow 1; or
`model/random_uniform/Mul`, compat.v1 of TensorFlow 2), the backend feeds it instead, so that
`noise="centre"`, a seed or an array give the same repeatable encodings as `Glow.encode`, and n_bins
is read from its `max` constant. Without it, only `noise="random"` with no seed is possible (the
graph's own draw); anything else is refused, and n_bits_x is taken as 5 (the published model's).

Anything missing (a file that is not a GraphDef, a tensor the backend needs) is a `GraphError`, one
line naming the file and the tensor; nothing is written.
"""
import os
import threading

import numpy as np
import tensorflow as tf

from glow_tf import latents as latent_ops
from glow_tf.compiled import batches
from glow_tf.config import GlowConfig
from glow_tf.model import Glow

# The tensor names of the original demo's unoptimized graph (demo/model.py's `inputs` / `outputs`).
ENC_X, ENC_X_D, ENC_Y = "input/image", "input/downsampled_image", "input/label"
TOP_EPS = "model/truediv_4"
DEC_X = "model_1/Cast_1"
NOISE_OPS = ("model/random_uniform", "model/random_uniform/Mul")
DEFAULT_N_BITS = 5  # the published CelebA-HQ model's


def split_eps_name(level):
    return f"model/pool{level}/truediv_1"


def dec_eps_name(level):
    return "Placeholder" if level == 0 else f"Placeholder_{level}"


class GraphError(ValueError):
    """A graph file the backend cannot run: not a GraphDef, or lacking a tensor it needs."""


def read_graph_def(path):
    """The GraphDef in `path` (a binary protobuf, as the published .pb files); GraphError otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no graph file {path!r} (OpenAI's graph_unoptimized.pb: "
                                f"scripts/download_celeba_hq_model.py fetches it)")
    with open(path, "rb") as f:
        data = f.read()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # noqa: BLE001 (protobuf raises DecodeError, or RuntimeWarning-derived errors)
        raise GraphError(f"{path!r} is not a TensorFlow GraphDef (a frozen .pb such as OpenAI's "
                         f"graph_unoptimized.pb)") from None
    if not graph_def.node:
        raise GraphError(f"{path!r} is not a TensorFlow GraphDef (it parses to an empty graph; expected a frozen "
                         f"graph such as OpenAI's graph_unoptimized.pb)")
    return graph_def


class OriginalGraph:
    """A frozen graph of the original release with `Glow`'s public NumPy methods.

    Args:
      path: the GraphDef file (`graph_unoptimized.pb`, or the test fixture).
      names: optional overrides of the tensor names, {"enc_x", "enc_x_d", "enc_y", "top_eps",
        "dec_x"}: (op names, without ":0").

    Attributes: config (a `GlowConfig` holding the image size, levels and n_bits_x read from the
    graph; depth and width are not used and are read from the graph's op names where present),
    path, noise_op (the fed noise op or None).
    Methods as `Glow`: encode, decode, sample, sample_latents, reconstruct, mix, interpolate,
    manipulate, project, flatten, unflatten (latents float32 [N, D], images uint8 [N, S, S, 3];
    the model is unconditional: y must be None, the graph gets label 0 as in the demo).
    """

    def __init__(self, path, names=None):
        names = {"enc_x": ENC_X, "enc_x_d": ENC_X_D, "enc_y": ENC_Y, "top_eps": TOP_EPS, "dec_x": DEC_X,
                 **(names or {})}
        self.path = path
        graph_def = read_graph_def(path)
        ops = {node.name: node for node in graph_def.node}

        def need(name, what):
            if name not in ops:
                raise GraphError(f"{path!r} lacks the tensor {name + ':0'!r} ({what}) that the original demo's "
                                 f"graph has; expected OpenAI's graph_unoptimized.pb or a graph with its names")
            return name + ":0"

        n_levels = 0
        while dec_eps_name(n_levels) in ops:
            n_levels += 1
        if n_levels == 0:
            need(dec_eps_name(0), "the decoder's level-0 eps input")
        enc_inputs = [need(names["enc_x"], "the encoder's image input"),
                      need(names["enc_x_d"], "the encoder's downsampled-image input"),
                      need(names["enc_y"], "the label input")]
        enc_outputs = [need(split_eps_name(i), f"the encoder's level-{i} eps") for i in range(n_levels - 1)]
        enc_outputs.append(need(names["top_eps"], "the encoder's top eps"))
        dec_inputs = [dec_eps_name(i) + ":0" for i in range(n_levels)]
        dec_output = need(names["dec_x"], "the decoder's uint8 image output")
        self.noise_op = next((n for n in NOISE_OPS if n in ops), None)
        n_bits = DEFAULT_N_BITS
        if self.noise_op and NOISE_OPS[0] + "/max" in ops:  # random_uniform's maxval, 1 / n_bins
            high = float(tf.make_ndarray(ops[NOISE_OPS[0] + "/max"].attr["value"].tensor))
            n_bits = int(round(-np.log2(high)))

        def import_graph():
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(import_graph, [])
        graph = wrapped.graph

        def shape(name):
            return graph.get_tensor_by_name(name).shape.as_list()

        size = shape(enc_inputs[0])[1]
        self._x_d_shape = shape(enc_inputs[1])[1:]
        eps_shapes = [tuple(shape(n)[1:]) for n in dec_inputs]
        depth = len({op.split("/")[2] for op in ops if op.startswith("model/0/") and op.split("/")[2].isdigit()
                     and len(op.split("/")) > 3}) or 1
        try:
            self.config = GlowConfig(image_size=size, n_levels=n_levels, depth=depth, width=1, n_bits_x=n_bits)
        except ValueError as e:
            raise GraphError(f"{path!r}: its inputs do not describe a Glow ({e})") from None
        if [tuple(s) for s in self.config.eps_shapes] != eps_shapes:
            raise GraphError(f"{path!r}: the decoder's eps inputs have shapes {eps_shapes}; a {size}x{size} Glow of "
                             f"{n_levels} levels has {self.config.eps_shapes}")
        feeds = enc_inputs + ([self.noise_op + ":0"] if self.noise_op else [])
        self._encode = wrapped.prune([graph.get_tensor_by_name(n) for n in feeds],
                                     [graph.get_tensor_by_name(n) for n in enc_outputs])
        self._decode = wrapped.prune([graph.get_tensor_by_name(n) for n in dec_inputs + [enc_inputs[2]]],
                                     graph.get_tensor_by_name(dec_output))
        self._lock = threading.Lock()

    def __repr__(self):
        c = self.config
        return (f"OriginalGraph({self.path!r}: {c.image_size}x{c.image_size}, {c.n_levels} levels, "
                f"{c.n_bits_x}-bit, noise {'fed' if self.noise_op else 'drawn by the graph'})")

    def _check_y(self, y):
        """The package's label rule for an unconditional model (latents.check_labels): no labels."""
        try:
            latent_ops.check_labels(self.config, y, 1)
        except ValueError as e:
            raise ValueError(f"{e}: the original graph is run unconditionally (label 0, as the original demo)") from None

    def encode(self, images, y=None, noise="random", seed=None, batch_size=64, progress=False):
        """uint8 images [N, S, S, 3] -> latents float32 [N, D] (the demo's encode); `noise` as
        `Glow.encode` when the graph's noise op can be fed (see the module docstring)."""
        cfg = self.config
        images = latent_ops.check_images(cfg, images)
        self._check_y(y)
        if not isinstance(noise, str):
            noise = np.asarray(noise, np.float32)
            if noise.shape != images.shape:
                raise ValueError(f"noise has shape {noise.shape}; expected the images' shape {images.shape}")
        if not self.noise_op and (not isinstance(noise, str) or noise != "random" or seed is not None):
            raise ValueError(f"{self.path!r} has no dequantisation-noise op ({' or '.join(NOISE_OPS)}) to feed: "
                             f"only noise='random' without a seed (the graph's own draw) is possible")
        out = np.zeros((len(images), cfg.n_dims), np.float32)
        for a, b in batches(len(images), batch_size, progress, "encode"):
            n = b - a
            args = [tf.constant(images[a:b]), tf.fill([n, *self._x_d_shape], tf.constant(128, tf.uint8)),
                    tf.zeros([n], tf.int32)]
            if self.noise_op:
                u = latent_ops.dequantization_noise(cfg, n, noise, seed, start=a) if isinstance(noise, str) \
                    else noise[a:b]
                args.append(tf.constant(u))
            with self._lock:
                eps = self._encode(*args)
            out[a:b] = np.concatenate([e.numpy().reshape(n, -1) for e in eps], axis=1)
        return out

    def decode(self, latents, y=None, batch_size=64, progress=False, postprocess=True):
        """Latents (flat [N, D] or [D], or a list of per-level eps) -> uint8 images [N, S, S, 3]
        (the demo's decode). The graph gives pixels only: postprocess=False is refused."""
        if not postprocess:
            raise ValueError("the original graph outputs uint8 pixels only (model_1/Cast_1); postprocess=False "
                             "is not available")
        cfg = self.config
        self._check_y(y)
        eps = latent_ops.unflatten_eps(cfg, latent_ops.as_flat(cfg, latents))
        out = np.zeros((len(eps[0]), cfg.image_size, cfg.image_size, cfg.n_channels), np.uint8)
        for a, b in batches(len(out), batch_size, progress, "decode"):
            with self._lock:
                out[a:b] = self._decode(*[tf.constant(e[a:b]) for e in eps], tf.zeros([b - a], tf.int32)).numpy()
        return out

    # The rest of the latent API is Glow's own, written in terms of config, encode and decode.
    sample_latents = Glow.sample_latents
    sample = Glow.sample
    reconstruct = Glow.reconstruct
    mix = Glow.mix
    interpolate = Glow.interpolate
    manipulate = Glow.manipulate
    project = Glow.project
    flatten = Glow.flatten
    unflatten = Glow.unflatten
    _one_latent = Glow._one_latent  # noqa: SLF001
    _image_shape = Glow._image_shape  # noqa: SLF001
