#!/usr/bin/env python
"""Face alignment accuracy: the eye centres the demo's aligner finds (glow_tf/demo/align.py) against
eye centres labelled by people, on real photos, for each detector side by side on the same photos.

    python bench/align_accuracy.py --format xy5 --list LIST.txt --images DIR [--upscale 4] [--limit 300]
    python bench/align_accuracy.py --format pts --images DIR          # iBUG 68-point .pts beside each photo
    python bench/align_accuracy.py --format celeba --list list_landmarks_celeba.txt --images img_celeba/

Label formats (the photos are read from --images; nothing is downloaded, no photo is kept):
  xy5     one photo per line: `path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5`, the five points of CUHK's facial-point
          set (Sun, Wang & Tang, CVPR 2013: image-left eye, image-right eye, nose, mouth corners), x's first
  pts     iBUG 300-W's 68-point .pts files beside the photos (same name); an eye's centre is the mean of its
          six points (0-based 36-41 the image-left eye, 42-47 the other), as imutils' FaceAligner takes it
  celeba  CelebA's list_landmarks_celeba.txt (a count line, a header, then `file lx ly rx ry ...`)

The error. The original's crop is fixed by two eye centres: the similarity that puts them at (94.98,
122.88) and (161.02, 122.88) of a 256 x 256 image (eye_targets). For each photo, the crop is made from
the detected eyes, as the demo makes it, and the labelled eyes are carried into that crop: the error is
the distance from where they land to where they should be, in pixels of the 256 px crop, averaged over
the two eyes. It is what a user sees (how far the real eyes are from the places the model was trained
on), it does not depend on the photo's resolution, and 1 px is 1/66 of the eye distance. A photo where
no face is found is a failure; a found face whose error exceeds half the eye distance (33 px) is
counted as the wrong face (it is also in the figures).

Prints one table (photos, failures, wrong faces, mean / median / 90th percentile / max error, seconds per
photo) and one JSON line per detector; `--csv FILE` writes the per-photo errors.
"""
import argparse
import csv
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

WRONG_FACE = 0.5  # an error above this fraction of the crop's eye distance: the wrong face (or no eyes)


def read_pts(path):
    """[N, 2] points of an iBUG .pts file (`version: 1`, `n_points: N`, `{`, N lines `x y`, `}`)."""
    with open(path) as f:
        text = f.read()
    body = text[text.index("{") + 1:text.index("}")]
    points = np.array([[float(v) for v in line.split()] for line in body.strip().splitlines()], np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{path}: not a .pts file of x y lines")
    return points


def load_labels(fmt, images, list_file=None, limit=None):
    """[(photo path, (image-left eye (x, y), image-right eye (x, y)))] in the labels' order."""
    out = []
    if fmt == "pts":
        for name in sorted(os.listdir(images)):
            stem, ext = os.path.splitext(name)
            pts = os.path.join(images, stem + ".pts")
            if ext.lower() in (".jpg", ".jpeg", ".png", ".ppm", ".bmp") and os.path.exists(pts):
                p = read_pts(pts)
                if len(p) != 68:
                    continue  # another mark-up (no eye points to take)
                out.append((os.path.join(images, name), (tuple(p[36:42].mean(0)), tuple(p[42:48].mean(0)))))
    else:
        if not list_file:
            raise SystemExit(f"align_accuracy.py: error: --format {fmt} needs --list")
        with open(list_file) as f:
            lines = [line.split() for line in f if line.strip()]
        if fmt == "celeba":
            lines = [parts for parts in lines[2:] if len(parts) == 11]
            for parts in lines:
                v = [float(x) for x in parts[1:5]]
                out.append((os.path.join(images, parts[0]), ((v[0], v[1]), (v[2], v[3]))))
        else:  # xy5
            for parts in lines:
                if len(parts) != 11:
                    raise SystemExit(f"align_accuracy.py: error: {list_file}: expected `path x1..x5 y1..y5`, got "
                                     f"{' '.join(parts)[:80]!r}")
                v = [float(x) for x in parts[1:]]
                out.append((os.path.join(images, parts[0]), ((v[0], v[5]), (v[1], v[6]))))
    missing = [p for p, _ in out if not os.path.exists(p)]
    out = [(p, e) for p, e in out if os.path.exists(p)]
    if missing:
        print(f"{len(missing)} labelled photo(s) not in {images} (skipped), e.g. {missing[0]}", file=sys.stderr)
    return out[:limit] if limit else out


def crop_error(found, labelled):
    """Mean distance (px of the 256 crop) from the eye targets to the labelled eyes carried into the crop
    that the found eyes make."""
    from glow_tf.demo import align  # noqa: PLC0415

    matrix = align.eye_transform(*found)
    eyes = np.array(labelled, np.float64)
    moved = eyes @ matrix[:, :2].T + matrix[:, 2]
    return float(np.linalg.norm(moved - np.array(align.eye_targets()), axis=1).mean())


def measure(photos, detector, upscale=1):
    """Per photo: the error (None when no face is found), and the seconds spent finding the eyes."""
    from glow_tf.demo import align  # noqa: PLC0415

    rows = []
    for path, eyes in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        if upscale != 1:
            h, w = image.shape[:2]
            image = np.asarray(Image.fromarray(image).resize((w * upscale, h * upscale), Image.BICUBIC))
            eyes = tuple(((x + 0.5) * upscale - 0.5, (y + 0.5) * upscale - 0.5) for x, y in eyes)
        start = time.perf_counter()
        found = align.find_eyes(image, detector)
        seconds = time.perf_counter() - start
        rows.append({"photo": os.path.basename(path), "detector": detector, "seconds": seconds,
                     "error": None if found is None else crop_error(found, eyes)})
    return rows


def summary(rows):
    from glow_tf.demo import align  # noqa: PLC0415

    (lx, _), (rx, _) = align.eye_targets()
    errors = np.array([r["error"] for r in rows if r["error"] is not None])
    out = {"detector": rows[0]["detector"], "photos": len(rows), "no_face": len(rows) - len(errors),
           "wrong_face": int(np.sum(errors > WRONG_FACE * (rx - lx))),
           "seconds_per_photo": float(np.mean([r["seconds"] for r in rows]))}
    if len(errors):
        out.update(mean=float(errors.mean()), median=float(np.median(errors)), p90=float(np.percentile(errors, 90)),
                   max=float(errors.max()))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("xy5", "pts", "celeba"), required=True)
    parser.add_argument("--images", required=True, help="the folder of the photos (paths in --list are relative to it)")
    parser.add_argument("--list", help="the landmark list (xy5, celeba)")
    parser.add_argument("--limit", type=int, help="the first N labelled photos only")
    parser.add_argument("--upscale", type=int, default=1,
                        help="enlarge each photo (bicubic) by this factor before detection, for small face crops")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "haar"])
    parser.add_argument("--csv", help="write the per-photo errors here")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.images):
        parser.error(f"--images {args.images!r} is not a folder")
    if args.upscale < 1:
        parser.error(f"--upscale {args.upscale}: expected a positive integer")
    photos = load_labels(args.format, args.images, args.list, args.limit)
    if not photos:
        parser.error(f"no labelled photo found in {args.images!r}")
    rows, summaries = [], []
    for detector in args.detectors:
        rows += (found := measure(photos, detector, args.upscale))
        summaries.append(summary(found))
    print(f"{len(photos)} photos ({args.format} labels{f', enlarged {args.upscale}x' if args.upscale > 1 else ''}); "
          f"error = px of the 256 px crop between the labelled eyes and their places, mean of both eyes")
    print(f"{'detector':9} {'photos':>6} {'no face':>7} {'wrong':>5} {'mean':>6} {'median':>6} {'p90':>6} {'max':>7} "
          f"{'s/photo':>7}")
    for s in summaries:
        figures = " ".join(f"{s[k]:{w}.2f}" if k in s else f"{'-':>{w}}"
                           for k, w in (("mean", 6), ("median", 6), ("p90", 6), ("max", 7)))
        print(f"{s['detector']:9} {s['photos']:6d} {s['no_face']:7d} {s['wrong_face']:5d} {figures} "
              f"{s['seconds_per_photo']:7.3f}")
    for s in summaries:
        print(json.dumps(s))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, ["photo", "detector", "error", "seconds"])
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
