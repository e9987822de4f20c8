"""The tf.functions behind `Glow`'s public NumPy methods: built once per model, traced once for any
batch size (the batch dimension is None in the signatures), called under a per-model lock (so
several threads, e.g. a web server's, may share one model), and run over inputs in batches.
"""
import threading
import weakref

import tensorflow as tf
from tqdm.auto import tqdm

from glow_tf.latents import check_count

_CACHE = weakref.WeakKeyDictionary()  # weak: the cache must not keep a model alive
_CACHE_LOCK = threading.Lock()


class Compiled:
    """encode(x uint8, y int32, noise) -> flat eps, and decode(flat eps, y) -> (model-space x, uint8)."""

    def __init__(self, glow):
        cfg, ref = glow.config, weakref.ref(glow)
        self.lock = threading.Lock()
        image = tf.TensorSpec([None, cfg.image_size, cfg.image_size, cfg.n_channels], tf.uint8)
        noise = tf.TensorSpec(image.shape, tf.float32)
        labels = tf.TensorSpec([None], tf.int32)

        # autograph off: the model's Python control flow depends only on the config, and tracing is 2x faster
        @tf.function(autograph=False, input_signature=[image, labels, noise])
        def encode(x, y, u):
            model = ref()
            return model.eps_to_flat(model.encode_dequantized(model.dequantize(x, u), y if cfg.ycond else None)[0])

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, cfg.n_dims]), labels])
        def decode(eps, y):
            model = ref()
            x = model.decode_with_log_det(eps, y if cfg.ycond else None)[0]
            return x, model.postprocess(x)

        self._encode, self._decode = encode, decode

    def encode(self, x, y, noise):
        with self.lock:
            return self._encode(x, y, noise).numpy()

    def decode(self, eps, y):
        with self.lock:
            x, pixels = self._decode(eps, y)
            return x.numpy(), pixels.numpy()


def compiled(glow):
    """The model's `Compiled` functions, built on first use."""
    with _CACHE_LOCK:
        if glow not in _CACHE:
            _CACHE[glow] = Compiled(glow)
        return _CACHE[glow]


def batches(n, batch_size, progress, desc):
    """Yields (start, stop) over n items in batches, with a tqdm bar when `progress` and n > batch_size."""
    batch_size = check_count(batch_size, "batch_size", 1)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress or n <= batch_size, leave=False) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield start, stop
            bar.update(stop - start)
