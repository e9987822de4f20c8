"""Do a face model's attribute directions do what they say? Classifiers trained on real faces judge it.

    python bench/direction_quality.py --logdir RUN                     # the run's own CelebA folder
    python bench/direction_quality.py --logdir RUN --celeba CELEBA --attr all --json quality.json

No face is used twice. The training faces of the CelebA folder (partition 0; 000001-009000 of the
first 10,000 release images) are cut in two: the first --n_directions (7,000) give the directions,
computed here with the project's own code (glow_tf.directions.AttributeMeans over `glow.encode`, the
dequantisation noise drawn as `python -m glow_tf direction` draws it, seeded), and the rest (2,000)
train one classifier per attribute. The held-out faces (the run's test stream, 1,000) are judged.

The judge of an attribute is a logistic regression (L2, C = 0.01, standardised features) on features
that know nothing of the model: a HOG descriptor of the grey 64x64 face (OpenCV; 8x8 cells, 16x16
blocks, 9 orientations) and the face's colours averaged to 8x8. It is trained on the faces as the model
outputs them (put on the model's 2**n_bits_x levels: floor(x / 2**(8-n)) * 2**(8-n)), and its accuracy
and ROC AUC on the real held-out faces are reported beside the share of positives.

Each held-out face is encoded with the bin-centre noise (so alpha 0 decodes to the face itself on the
model's levels) and decoded at `z + alpha * direction` for alpha -1 and +1 (`glow.manipulate`, the
demo's manipulate). The figure is the judge's mean probability of the attribute over the held-out faces
at alpha -1, 0 and +1: a direction that does what it says raises it at +1 and lowers it at -1.
The default attributes are Smiling, Eyeglasses, Male, Young and Blond_Hair (--attr all: the 40;
each costs 2 x 1,000 decodes and a classifier fit).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_ATTRIBUTES = ("Smiling", "Eyeglasses", "Male", "Young", "Blond_Hair")
ALPHAS = (-1.0, 0.0, 1.0)
JUDGE_C = 0.01
FEATURE_SIZE = 64  # HOG window; faces of another size are resized to it first


# --- the judges: independent of any Glow model ------------------------------------------------------
def on_output_grid(images, n_bits_x):
    """uint8 images on the levels a model with n_bits_x bits outputs: floor(x / 2**(8-n)) * 2**(8-n)."""
    step = 2 ** (8 - int(n_bits_x))
    return (np.asarray(images) // step * step).astype(np.uint8)


def features(images):
    """float32 [N, F]: HOG of the grey face at 64x64 (8x8 cells, 16x16 blocks with stride 8, 9 bins:
    1764 values) and the RGB colours box-averaged to 8x8 (192 values, in [0, 1])."""
    import cv2  # noqa: PLC0415 (opencv-python-headless, a requirement of the demo's face alignment)

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected RGB images [N, R, R, 3], got shape {images.shape}")
    hog = cv2.HOGDescriptor((FEATURE_SIZE, FEATURE_SIZE), (16, 16), (8, 8), (8, 8), 9)
    out = []
    for image in images:
        if image.shape[0] != FEATURE_SIZE:
            image = cv2.resize(image, (FEATURE_SIZE, FEATURE_SIZE), interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        colours = image.reshape(8, FEATURE_SIZE // 8, 8, FEATURE_SIZE // 8, 3).mean(axis=(1, 3)) / 255.0
        out.append(np.concatenate([hog.compute(grey).ravel(), colours.ravel()]))
    return np.asarray(out, np.float32)


def fit_judges(feats, labels, names, c=JUDGE_C):
    """{name: fitted sklearn pipeline} for labels [N, A] (+1 has it, -1 / 0 has not) on features [N, F]."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    judges = {}
    for j, name in enumerate(names):
        y = np.asarray(labels)[:, j] == 1
        if y.all() or not y.any():
            raise ValueError(f"attribute {name!r}: the judge's faces are all {'with' if y.all() else 'without'} it; "
                             f"it needs both")
        judges[name] = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(feats, y)
    return judges


def probability(judge, images):
    """The judge's probability of its attribute for each image, float [N]."""
    return judge.predict_proba(features(images))[:, 1]


def judge_scores(judges, feats, labels, names):
    """{name: (accuracy, ROC AUC)} of each judge on labelled features (real faces it never saw)."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    out = {}
    for j, name in enumerate(names):
        y = np.asarray(labels)[:, j] == 1
        p = judges[name].predict_proba(feats)[:, 1]
        auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
        out[name] = (float(np.mean((p > 0.5) == y)), auc)
    return out


# --- the directions and their effect, through the model ---------------------------------------------
def find_directions(glow, batches, names):
    """(directions float32 [A, D], n_with [A], n_without [A]) from (images, labels [B, A]) batches encoded
    by `glow` (random dequantisation noise, seeded per batch): glow_tf.directions.AttributeMeans, the
    code of `python -m glow_tf direction`."""
    from glow_tf.directions import AttributeMeans  # noqa: PLC0415

    means = AttributeMeans(glow.config.n_dims, names)
    for k, (images, labels) in enumerate(batches):
        means.update(glow.encode(images, noise="random", seed=k), labels)
    return means.directions(), means.n_with, means.n_without


def manipulation_effect(glow, judges, names, images, dirs, alphas=ALPHAS, batch_size=64):
    """float [len(alphas), A]: the mean over `images` of judge a's probability of its attribute after
    moving each image's latent by alpha * dirs[a] (bin-centre encoding, so alpha 0 is the image on the
    model's levels); every attribute's alpha-0 entry is the same decode, made once."""
    z = glow.encode(images, noise="centre", batch_size=batch_size)
    base = glow.decode(z, batch_size=batch_size)
    out = np.zeros((len(alphas), len(names)))
    for a, name in enumerate(names):
        for k, alpha in enumerate(alphas):
            moved = base if alpha == 0 else glow.manipulate(z, dirs[a], [alpha], batch_size=batch_size)[:, 0]
            out[k, a] = probability(judges[name], moved).mean()
    return out


# --- the run ------------------------------------------------------------------------------------------
def split_faces(folder, n_directions):
    """(direction indices, judge indices, held-out indices) into folder.files: the training faces
    (partition 0) cut at n_directions, and the test stream (partition 1)."""
    train = np.flatnonzero(folder.partition == 0)
    held_out = np.flatnonzero(folder.partition == 1)
    if not 0 < n_directions < len(train):
        raise ValueError(f"--n_directions {n_directions}: expected between 1 and {len(train) - 1} (the folder has "
                         f"{len(train)} training faces; the rest train the judges)")
    if not len(held_out):
        raise ValueError(f"{folder.data_dir!r} has no held-out faces (partition 1)")
    return train[:n_directions], train[n_directions:], held_out


def run_celeba_dir(logdir):
    """The --data_dir of a run trained with --problem celeba (its train.txt's flags)."""
    path = os.path.join(logdir, "train.txt")
    if not os.path.exists(path):
        raise SystemExit(f"direction_quality.py: {logdir!r} has no train.txt; expected a train.py run directory")
    with open(path) as f:
        flags = json.loads(f.readline())
    if flags.get("problem") != "celeba" or not flags.get("data_dir"):
        raise SystemExit(f"direction_quality.py: {logdir!r} was not trained on a CelebA folder; give --celeba DIR")
    return flags["data_dir"]


def format_table(results):
    head = (f"{'attribute':20s} {'dir +/-':>11s} {'judge +/-':>11s} {'test +':>6s} {'acc':>5s} {'AUC':>5s} "
            f"{'p(-1)':>6s} {'p(0)':>6s} {'p(+1)':>6s}")
    lines = [head]
    for r in results:
        lines.append(f"{r['attribute']:20s} {r['n_directions_with']:5d}/{r['n_directions_without']:<5d} "
                     f"{r['n_judge_with']:5d}/{r['n_judge_without']:<5d} {r['n_test_with']:6d} {r['judge_accuracy']:5.3f} "
                     f"{r['judge_auc']:5.3f} {r['p_minus']:6.3f} {r['p_zero']:6.3f} {r['p_plus']:6.3f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", required=True, help="a train.py run on a CelebA folder (its latest checkpoint)")
    p.add_argument("--celeba", help="the CelebA folder (default: the run's --data_dir)")
    p.add_argument("--attr", nargs="+", default=list(DEFAULT_ATTRIBUTES),
                   help=f"attributes, or `all` for the 40 (default {' '.join(DEFAULT_ATTRIBUTES)})")
    p.add_argument("--n_directions", type=int, default=7000,
                   help="training faces (the first ones) that give the directions; the rest train the judges")
    p.add_argument("--alpha", type=float, default=1.0, help="the step along each direction, both ways (default 1)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if not np.isfinite(args.alpha) or args.alpha <= 0:
        p.error(f"--alpha {args.alpha}: expected a positive number")

    from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: PLC0415

    import_tensorflow_quietly()
    from data_loaders import celeba  # noqa: PLC0415
    from glow_tf import load_run  # noqa: PLC0415
    from glow_tf.directions import CELEBA_ATTRIBUTES, select_attributes  # noqa: PLC0415

    attrs = list(CELEBA_ATTRIBUTES) if args.attr == ["all"] else args.attr
    try:
        columns = select_attributes(list(CELEBA_ATTRIBUTES), attrs, "the CelebA attributes")
        folder = celeba.CelebAFolder(args.celeba or run_celeba_dir(args.logdir))
        i_dir, i_judge, i_test = split_faces(folder, args.n_directions)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    names = [CELEBA_ATTRIBUTES[j] for j in columns]
    labels = folder.labels[:, columns]
    glow, prefix = load_run(args.logdir)
    cfg = glow.config
    print(f"model {prefix}: {cfg.image_size}px, {cfg.n_levels} levels x {cfg.depth} steps, {cfg.n_bits_x}-bit; "
          f"faces: {len(i_dir)} for the directions, {len(i_judge)} for the judges, {len(i_test)} held out", flush=True)

    t0 = time.time()
    paths = [os.path.join(folder.data_dir, celeba.IMAGE_DIR, f) for f in folder.files]
    batches = folder.batches([paths[i] for i in i_dir], labels[i_dir], cfg.image_size, 256).as_numpy_iterator()
    dirs, n_with, n_without = find_directions(glow, batches, names)
    t_dirs = time.time() - t0
    print(f"directions from {len(i_dir)} faces: {t_dirs:.0f} s", flush=True)

    t0 = time.time()
    judge_images = on_output_grid(folder.load([paths[i] for i in i_judge], cfg.image_size), cfg.n_bits_x)
    test_images = folder.load([paths[i] for i in i_test], cfg.image_size)
    judges = fit_judges(features(judge_images), labels[i_judge], names)
    scores = judge_scores(judges, features(on_output_grid(test_images, cfg.n_bits_x)), labels[i_test], names)
    t_judges = time.time() - t0
    print(f"judges on {len(i_judge)} faces: {t_judges:.0f} s", flush=True)

    t0 = time.time()
    alphas = (-args.alpha, 0.0, args.alpha)
    effect = manipulation_effect(glow, judges, names, test_images, dirs, alphas, args.batch_size)
    t_effect = time.time() - t0
    print(f"manipulated {len(i_test)} held-out faces along {len(names)} direction(s): {t_effect:.0f} s", flush=True)

    results = []
    for a, name in enumerate(names):
        judged = labels[i_judge, a] == 1
        results.append(dict(attribute=name, n_directions_with=int(n_with[a]), n_directions_without=int(n_without[a]),
                            n_judge_with=int(judged.sum()), n_judge_without=int((~judged).sum()),
                            n_test_with=int((labels[i_test, a] == 1).sum()), n_test=len(i_test),
                            judge_accuracy=scores[name][0], judge_auc=scores[name][1],
                            p_minus=float(effect[0, a]), p_zero=float(effect[1, a]), p_plus=float(effect[2, a])))
    print(f"\nmean probability of the attribute on {len(i_test)} held-out faces at alpha -{args.alpha:g}, 0, "
          f"+{args.alpha:g} (judge accuracy and AUC on the real held-out faces):")
    print(format_table(results))
    summary = dict(logdir=args.logdir, checkpoint=prefix, alpha=args.alpha, n_directions=len(i_dir),
                   n_judge=len(i_judge), n_test=len(i_test), seconds=dict(directions=round(t_dirs, 1),
                   judges=round(t_judges, 1), manipulate=round(t_effect, 1)), results=results)
    for r in results:
        print(json.dumps(r))
    if args.json:
        from glow_tf.io import atomic_path  # noqa: PLC0415

        with atomic_path(args.json, suffix=".json") as tmp, open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
