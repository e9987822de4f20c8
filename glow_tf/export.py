"""A trained Glow as a TF SavedModel with `encode`, `decode` and `sample` signatures (servable with
TF Serving, loadable with `tf.saved_model.load` without this package).

Signatures (with a `y` int32 [N] input only for a class-conditional model):
  encode(x: uint8 [N, H, W, C])            -> {"eps": float32 [N, D]}   (fresh U(0, 1/n_bins) noise,
                                                                          as the original's f_encode)
  decode(eps: float32 [N, D])               -> {"images": uint8 [N, H, W, C], "x": float32 model space}
  sample(temperature: float32 [N])          -> {"images": uint8, "eps": float32 [N, D]}
                                               (one sample per temperature, fresh noise; f_sample)
`eps` is the original's flat standardised latent (split levels first, top last, NHWC row-major).
The model's GlowConfig is saved beside, as `assets.extra/config.json`.
"""
import os

import tensorflow as tf


class _Servable(tf.Module):
    def __init__(self, glow):
        super().__init__(name="glow_servable")
        self.glow = glow
        cfg = glow.config
        image = tf.TensorSpec([None, cfg.image_size, cfg.image_size, cfg.n_channels], tf.uint8, name="x")
        eps = tf.TensorSpec([None, cfg.n_dims], tf.float32, name="eps")
        temperature = tf.TensorSpec([None], tf.float32, name="temperature")
        y = [tf.TensorSpec([None], tf.int32, name="y")] if cfg.ycond else []

        def encode(x, *y):
            return {"eps": glow.eps_to_flat(glow.encode_dequantized(glow.dequantize(x), *y)[0])}

        def decode(e, *y):
            x = glow.decode_with_log_det(e, *y)[0]
            return {"images": glow.postprocess(x), "x": x}

        def sample(t, *y):
            tf.debugging.assert_non_negative(t, message="temperature must be >= 0")
            e = glow.temperature_eps(tf.shape(t)[0], t)
            return {"images": glow.postprocess(glow.decode_with_log_det(e, *y)[0]), "eps": glow.eps_to_flat(e)}

        self.encode = tf.function(encode, autograph=False, input_signature=[image, *y])
        self.decode = tf.function(decode, autograph=False, input_signature=[eps, *y])
        self.sample = tf.function(sample, autograph=False, input_signature=[temperature, *y])


def export_saved_model(glow, path):
    """Writes `glow` as a SavedModel at `path` (see the module docstring for the signatures)."""
    if not glow.is_initialized:
        raise ValueError("the model's actnorms were never initialised: export a trained or restored model")
    servable = _Servable(glow)
    signatures = {name: getattr(servable, name).get_concrete_function() for name in ("encode", "decode", "sample")}
    tf.saved_model.save(servable, path, signatures=signatures)
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    glow.config.save(os.path.join(path, "assets.extra", "config.json"))
    return path
