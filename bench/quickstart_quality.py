"""How digit-like are a digits run's samples? A classifier trained on real digits judges them.

    python bench/quickstart_quality.py --logdir runs/digits               # samples at T=0.7, seed 0
    python bench/quickstart_quality.py --logdir runs/digits --json q.json

The judge is a logistic regression fitted on the run's problem's 1497 train images, prepared as the
run trains on them (problem, image size) and put on the run's output grid (the n_bits_x levels sampling
produces), then brought back to 8x8: grey (mean of the channels), box-averaged. Three sets are judged:
  samples  the run's samples at --temperature (class i % 10 for a class-conditional run)
  real     the problem's 300 test images (never seen by the judge), prepared the same way
  noise    uniform random images on the same grid
For each: the mean confidence (the classifier's largest class probability), the share of confident
labels (>= 0.9), the histogram of predicted classes and its entropy in bits (log2 10 = 3.32 when every
class is equally common, 0 when all images get one class), and for a class-conditional run the share of
samples labelled as the class they were drawn for.
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

N_CLASSES = 10
CONFIDENT = 0.9


# --- the judge: independent of any Glow model ---------------------------------------------------
def problem_images(problem, image_size):
    """(x_train, y_train, x_test, y_test) of a digits problem, uint8 [N, image_size, image_size, 3], as
    its loader prepares them (sizes below 8 box-averaged, as the loader's get_data does)."""
    from data_loaders import digits
    loaders = {"digits": digits.load_digits, "digits_4bit": digits.load_digits_4bit}
    if problem not in loaders:
        raise ValueError(f"problem {problem!r}; expected one of {', '.join(loaders)}")
    x_train, y_train, x_test, y_test = loaders[problem](image_size)

    def shrink(x):
        f = x.shape[1] // image_size
        return x.reshape(len(x), image_size, f, image_size, f, 3).mean(axis=(2, 4)).astype(np.uint8)
    return shrink(x_train), y_train, shrink(x_test), y_test


def on_output_grid(images, n_bits_x):
    """uint8 images put on the levels a model with n_bits_x bits outputs: floor(x / 2**(8-n)) * 2**(8-n)."""
    step = 2 ** (8 - n_bits_x)
    return (np.asarray(images) // step * step).astype(np.uint8)


def to_features(images):
    """uint8 [N, R, R, C] with R a multiple or a divisor of 8 -> float [N, 64] in [0, 1]: grey (mean of
    the channels), box-averaged down to 8x8 (pixels repeated when R < 8)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or (images.shape[1] % 8 and 8 % images.shape[1]):
        raise ValueError(f"expected images [N, R, R, C] with R a multiple or a divisor of 8, got shape "
                         f"{images.shape}")
    grey = images.astype(np.float64).mean(axis=3) / 255.0
    r = grey.shape[1]
    if r < 8:
        grey = np.repeat(np.repeat(grey, 8 // r, axis=1), 8 // r, axis=2)
    f = grey.shape[1] // 8
    return grey.reshape(len(grey), 8, f, 8, f).mean(axis=(2, 4)).reshape(len(grey), 64)


def fit_classifier(images, y):
    """A multinomial logistic regression on to_features(images)."""
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=1.0, max_iter=3000).fit(to_features(images), y)


def judge(classifier, images, wanted=None):
    """Figures for one set of images: mean confidence, confident share, class histogram and its entropy
    (bits); with `wanted` labels also the share labelled as wanted."""
    probs = classifier.predict_proba(to_features(images))
    labels = probs.argmax(axis=1)
    hist = np.bincount(labels, minlength=N_CLASSES)
    p = hist / hist.sum()
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    result = dict(n=len(images), mean_confidence=float(probs.max(axis=1).mean()),
                  confident_share=float((probs.max(axis=1) >= CONFIDENT).mean()),
                  class_histogram=hist.tolist(), class_entropy_bits=entropy)
    if wanted is not None:
        result["agreement"] = float((labels == np.asarray(wanted)).mean())
    return result


def noise_images(n, size, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def reference_figures(problem, image_size, n_bits_x, n_noise=300, seed=0):
    """(classifier, {"real": ..., "noise": ...}): the judge fitted on the problem's train images on the
    n_bits_x output grid, and its figures for the test images and for uniform noise on that grid."""
    x_train, y_train, x_test, y_test = problem_images(problem, image_size)
    classifier = fit_classifier(on_output_grid(x_train, n_bits_x), y_train)
    return classifier, {"real": judge(classifier, on_output_grid(x_test, n_bits_x), y_test),
                        "noise": judge(classifier, on_output_grid(noise_images(n_noise, image_size, seed), n_bits_x))}


# --- the run ------------------------------------------------------------------------------------------
def run_hps(logdir):
    """The run's flags: the first line of its train.txt (train.py writes them there)."""
    path = os.path.join(logdir, "train.txt")
    if not os.path.exists(path):
        raise SystemExit(f"quickstart_quality.py: {logdir!r} has no train.txt; expected a train.py run directory")
    with open(path) as f:
        return json.loads(f.readline())


def draw_samples(logdir, n, temperature, seed):
    from glow_tf import load_run
    glow, _ = load_run(logdir)
    y = np.arange(n, dtype=np.int32) % glow.config.n_y if glow.config.ycond else None
    return glow.sample(n, temperature, y=y, seed=seed), y


def format_row(name, r):
    line = (f"{name:8s} n={r['n']:4d}  confidence {r['mean_confidence']:.3f}  confident {r['confident_share']:.2f}  "
            f"class entropy {r['class_entropy_bits']:.2f} bits  histogram {r['class_histogram']}")
    return line + (f"  agreement {r['agreement']:.2f}" if "agreement" in r else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", required=True, help="a train.py run on the digits or digits_4bit problem")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--n", type=int, default=300, help="samples (and noise images) judged (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n {args.n}: expected a positive number of samples")

    from glow_tf.cli.quiet import import_tensorflow_quietly  # noqa: PLC0415

    import_tensorflow_quietly()  # first: TensorFlow without its start-up noise
    hps = run_hps(args.logdir)
    size, bits = hps["image_size"], hps["n_bits_x"]
    try:
        classifier, reference = reference_figures(hps["problem"], size, bits, n_noise=args.n, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f"quickstart_quality.py: the run {args.logdir!r}: {e}") from None
    samples, wanted = draw_samples(args.logdir, args.n, args.temperature, args.seed)
    results = {"samples": judge(classifier, samples, wanted), **reference}
    print(f"{args.logdir}: problem {hps['problem']}, {size}x{size}, {bits} bits, temperature {args.temperature}")
    for name, r in results.items():
        print(format_row(name, r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(logdir=args.logdir, temperature=args.temperature, seed=args.seed, **results), f, indent=1)
    return results


if __name__ == "__main__":
    main()
