"""Build a small frozen graph shaped like OpenAI's published CelebA-HQ demo graph, as a test fixture.

OpenAI's demo (openai/glow demo/model.py, `optimized = False`) loads `graph_unoptimized.pb` and runs it
by tensor name: the encoder reads `input/image` (uint8 [N, 256, 256, 3]), `input/downsampled_image`
(uint8 [N, 128, 128, 3], fed the constant 128) and `input/label` (int32 [N], fed 0) and gives the six
standardised latents `model/pool0/truediv_1` ... `model/pool4/truediv_1` and `model/truediv_4`; the
decoder reads them back through `Placeholder`, `Placeholder_1` ... `Placeholder_5` (and `input/label`)
and gives the uint8 image `model_1/Cast_1`.

This script builds a graph with those names from the release's own code (model.py's `codec`, `prior`,
`Z.squeeze2d`; tfops.py's layers), imported from a checkout given as `--original_dir` under
`tf.compat.v1` with bench/original.py's stand-ins, with tiny hyper-parameters:

  encoder, variable scope `model`: model.py's f_encode (preprocess, U(0, 1/n_bins) dequantisation noise
      `model/random_uniform` (TensorFlow 1's name; TensorFlow 2's compat.v1 names it
      `model/random_uniform/Mul`), squeeze, encoder, top prior) with, between the prior's log-density and its
      eps, the bits-per-dimension division of model.py's _f_loss, so that the top eps is `model/truediv_4`
      at 5 bits as in the published graph (the public code alone, whose f_encode skips that division,
      would name it `model/truediv_3`);
  decoder, the same variables reused (name scope `model_1`): model.py's f_decode fed by placeholders
      created without names (`Placeholder`, `Placeholder_1`, ...), its postprocess cast `model_1/Cast_1`;
  `input/downsampled_image`: a placeholder of half the image size that no output depends on (the
      published graph's use of it is not public; the demo feeds it a constant).

The variables get model.py's initialisers, then its data-dependent actnorm init (the encoder built once
more under `arg_scope([get_variable_ddi, actnorm], init=True)` and run on 16 random images, as
abstract_model_xy does), then N(0, 0.02) noise added to every one (so that the zero-initialised
layers matter), and the graph is frozen (variables -> constants). The script
writes into --out:

  graph.pb    the frozen GraphDef
  io.npz      `x` uint8 [N, H, W, 3], `noise` float32 [N, H, W, 3] (fed to the noise tensor),
              `enc_eps_0..L-1` the encoder's outputs for them, `dec_eps_0..L-1` unit normals times 0.7,
              `dec_x` uint8 the decoder's output for those, all computed by a TF1 session on graph.pb
  meta.json   the hyper-parameters, the tensor names, the original's commit, TensorFlow's version

  python scripts/make_original_graph.py --original_dir path/to/openai_glow --out tests/fixtures/original_graph \\
      --original_commit 91b2c577a5c110b2b38761fc56d81f7d87f077c1
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(HERE), "bench"), os.path.join(os.path.dirname(HERE), "scripts")]

DEFAULTS = dict(image_size=16, n_levels=3, depth=2, width=8, flow_permutation=2, flow_coupling=0, learntop=True,
                n_bits_x=5, n_images=3, seed=0)


def get_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--original_dir", required=True, help="a checkout of openai/glow (model.py, tfops.py, optim.py)")
    parser.add_argument("--out", required=True, help="the fixture folder to write")
    parser.add_argument("--original_commit", help="the checkout's commit, when it is not a git work tree")
    for key, value in DEFAULTS.items():
        if isinstance(value, bool):
            parser.add_argument(f"--{key}", type=int, default=int(value))
        else:
            parser.add_argument(f"--{key}", type=type(value), default=value)
    return parser.parse_args(argv)


def build(model, tfops, tf1, s):
    """The encoder and decoder with the demo's names, in the current graph; returns their tensors."""
    hps = argparse.Namespace(image_size=s["image_size"], n_levels=s["n_levels"], depth=s["depth"],
                             width=s["width"], flow_permutation=s["flow_permutation"],
                             flow_coupling=s["flow_coupling"], learntop=bool(s["learntop"]), ycond=False, n_y=1,
                             n_bits_x=s["n_bits_x"], n_bins=2. ** s["n_bits_x"])
    size = s["image_size"]
    with tf1.name_scope("input"):
        x_in = tf1.placeholder(tf1.uint8, [None, size, size, 3], name="image")
        tf1.placeholder(tf1.uint8, [None, size // 2, size // 2, 3], name="downsampled_image")
        y_in = tf1.placeholder(tf1.int32, [None], name="label")
    encoder, decoder = model.codec(hps)

    def preprocess(x):  # model.py's, verbatim in effect
        x = tf1.cast(x, "float32")
        if hps.n_bits_x < 8:
            x = tf1.floor(x / 2 ** (8 - hps.n_bits_x))
        return x / hps.n_bins - .5

    def postprocess(x):
        return tf1.cast(tf1.clip_by_value(tf1.floor((x + .5) * hps.n_bins) * (256. / hps.n_bins), 0, 255), "uint8")

    def f_encode(reuse):
        with tf1.variable_scope("model", reuse=reuse):
            y_onehot = tf1.cast(tf1.one_hot(y_in, hps.n_y, 1, 0), "float32")
            objective = tf1.zeros_like(x_in, dtype="float32")[:, 0, 0, 0]
            z = preprocess(x_in)
            noise = tf1.random_uniform(tf1.shape(z), 0, 1. / hps.n_bins)
            z = z + noise
            objective += - np.log(hps.n_bins) * np.prod(tfops.int_shape(z)[1:])
            z = tfops.squeeze2d(z, 2)
            z, objective, eps = encoder(z, objective)
            hps.top_shape = tfops.int_shape(z)[1:]
            logp, _, top_eps = model.prior("prior", y_onehot, hps)
            objective += logp(z)
            _ = -objective / (np.log(2.) * size * size * 3)  # _f_loss's bits_x (see the module docstring)
            eps.append(top_eps(z))
        return eps, noise

    eps, noise = f_encode(reuse=False)
    dec_eps = [tf1.placeholder(tf1.float32, e.get_shape().as_list()) for e in eps]
    with tf1.variable_scope("model", reuse=True):  # f_decode
        y_onehot = tf1.cast(tf1.one_hot(y_in, hps.n_y, 1, 0), "float32")
        _, sample, _ = model.prior("prior", y_onehot, hps)
        z = sample(eps=dec_eps[-1])
        z = decoder(z, eps=dec_eps[:-1])
        z = tfops.unsqueeze2d(z, 2)
        dec_x = postprocess(z)
    # model.py's data-dependent init (abstract_model_xy): the encoder once more with actnorm's init
    # on, in name scope model_2 (no output depends on it, so freezing drops it)
    with tfops.arg_scope([tfops.get_variable_ddi, tfops.actnorm], init=True):
        ddi = f_encode(reuse=True)[0]
    return eps, dec_eps, dec_x, noise, ddi


def make(original_dir, out, s, original_commit=None):
    import original  # noqa: PLC0415 (bench/original.py: the stand-ins)
    from make_training_reference import _commit, save_npz  # noqa: PLC0415 (timestamp-free .npz, the commit)

    model, tfops, tf1 = original.import_original(original_dir)
    rng = np.random.RandomState(s["seed"])
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(s["seed"])
        np.random.seed(s["seed"])
        eps, dec_eps, dec_x, noise, ddi = build(model, tfops, tf1, s)
        names = {"enc_x": "input/image", "enc_x_d": "input/downsampled_image", "enc_y": "input/label",
                 "enc_eps": [e.op.name for e in eps], "dec_eps": [e.op.name for e in dec_eps],
                 "dec_x": dec_x.op.name, "noise": noise.op.name}
        with tf1.Session(graph=graph, config=tf1.ConfigProto(intra_op_parallelism_threads=1,
                                                             inter_op_parallelism_threads=1)) as sess:
            sess.run(tf1.global_variables_initializer())
            size, n = s["image_size"], s["n_images"]
            init_x = rng.randint(0, 256, size=(16, size, size, 3)).astype(np.uint8)
            sess.run(ddi, {graph.get_tensor_by_name(names["enc_x"] + ":0"): init_x,
                           graph.get_tensor_by_name(names["enc_y"] + ":0"): np.zeros(16, np.int32)})
            for v in tf1.global_variables():
                sess.run(v.assign_add(rng.normal(0, 0.02, v.shape.as_list()).astype(v.dtype.as_numpy_dtype)))
            outputs = [*names["enc_eps"], names["dec_x"], names["enc_x_d"]]
            frozen = tf1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "graph.pb"), "wb") as f:
        f.write(frozen.SerializeToString(deterministic=True))  # map fields in a fixed order: the same bytes

    # The expected outputs: the frozen graph itself, in a TF1 session.
    x = rng.randint(0, 256, size=(n, size, size, 3)).astype(np.uint8)
    noise = rng.uniform(0, 1. / 2 ** s["n_bits_x"], size=x.shape).astype(np.float32)
    run = tf1.Graph()
    with run.as_default():
        tf1.import_graph_def(frozen, name="")
        get = lambda name: run.get_tensor_by_name(name + ":0")  # noqa: E731
        with tf1.Session(graph=run) as sess:
            common = {get(names["enc_x_d"]): np.full((n, size // 2, size // 2, 3), 128, np.uint8),
                      get(names["enc_y"]): np.zeros(n, np.int32)}
            enc = sess.run([get(e) for e in names["enc_eps"]],
                           {**common, get(names["enc_x"]): x, get(names["noise"]): noise})
            dec_in = [0.7 * rng.standard_normal(e.shape).astype(np.float32) for e in enc]
            dec = sess.run(get(names["dec_x"]), {**common, **{get(p): e for p, e in zip(names["dec_eps"], dec_in)}})
    save_npz(os.path.join(out, "io.npz"), {"x": x, "noise": noise, "dec_x": dec,
                                           **{f"enc_eps_{i}": e for i, e in enumerate(enc)},
                                           **{f"dec_eps_{i}": e for i, e in enumerate(dec_in)}})
    import tensorflow as tf  # noqa: PLC0415

    meta = {"hps": s, "names": names, "eps_shapes": [list(e.shape[1:]) for e in enc], "tensorflow": tf.__version__,
            "original_commit": _commit(original_dir) or original_commit}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    return names, os.path.getsize(os.path.join(out, "graph.pb"))


def main(argv=None):
    args = get_arguments(argv)
    s = {k: getattr(args, k) for k in DEFAULTS}
    names, size = make(args.original_dir, args.out, s, args.original_commit)
    print(f"wrote {args.out}: graph.pb ({size} bytes), io.npz, meta.json; encoder outputs {names['enc_eps']}, "
          f"decoder inputs {names['dec_eps']} -> {names['dec_x']}")


if __name__ == "__main__":
    main()
