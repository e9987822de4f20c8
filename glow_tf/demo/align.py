"""Face alignment as the original demo's (demo/align_face.py): rotate, scale and shift a photo so the
eyes are level, a fixed distance apart and at fixed places of a 256 x 256 crop.

The original found the eyes with dlib's 68-landmark model (downloaded at set-up) and warped with
imutils' FaceAligner(desiredFaceWidth=256, desiredLeftEye=(0.371, 0.480)): the eyes' midpoint goes to
(128, 0.48 * 256) and their distance becomes (1 - 2 * 0.371) * 256 px. Here the same warp is fitted
to eye centres found by one of two detectors, neither downloaded at run time:

- "yunet" (the default): OpenCV's YuNet face detector (cv2.FaceDetectorYN, a 230 KB ONNX model from
  opencv_zoo, MIT licence, shipped in glow_tf/demo/models/), which returns five landmarks per face,
  both eye centres among them. The largest face is used.
- "haar": OpenCV's Haar cascades, which ship inside opencv-python-headless (cv2.data.haarcascades):
  the largest frontal face, then the largest eye detection in each upper quarter of it; when the eye
  cascade misses, the eyes' usual place in a Haar face box. Kept for comparison
  (bench/align_accuracy.py measures both against human-labelled eyes; docs/faces.md has the figures).
"""
import functools
import os
import threading

import numpy as np

SIZE = 256
LEFT_EYE = (0.371, 0.480)  # the image-left eye's place, as fractions of SIZE (the original's desiredLeftEye)
DETECT_WIDTH = 800  # the original detects on the photo resized to this width (the Haar path too)
DETECTORS = ("yunet", "haar")
YUNET_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "face_detection_yunet_2026may.onnx")
# YuNet finds faces of about 10 to 300 px: the photo's longer side is brought to 640 px (never enlarged), and
# to 320 px when nothing is found there (a face filling the photo)
YUNET_SIDES = (640, 320)
YUNET_SCORE = 0.6  # opencv_zoo's default confidence threshold
YUNET_NMS = 0.3
YUNET_LEVEL_DEGREES = 10  # eyes tilted more than this: detect again on the photo turned upright
# eye centres as fractions of a haarcascade_frontalface_default box, for when the eye cascade misses
FACE_BOX_EYES = ((0.31, 0.39), (0.69, 0.39))


def eye_targets(size=SIZE):
    """((x, y) of the image-left eye, (x, y) of the image-right eye) in the aligned image, in pixels
    (pixel centres at integers, as cv2.warpAffine)."""
    x, y = LEFT_EYE
    return (x * size, y * size), ((1 - x) * size, y * size)


def eye_transform(left_eye, right_eye, size=SIZE):
    """The 2 x 3 similarity (rotation, uniform scale, shift) taking the two eye centres (x, y) onto
    `eye_targets(size)`: imutils' FaceAligner matrix."""
    (tlx, tly), (trx, try_) = eye_targets(size)
    src_l, src_r = complex(*left_eye), complex(*right_eye)
    if abs(src_r - src_l) < 1e-6:
        raise ValueError("the two eye centres coincide")
    a = (complex(trx, try_) - complex(tlx, tly)) / (src_r - src_l)  # scale * e^(i angle)
    t = complex(tlx, tly) - a * src_l
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]], np.float64)


def align_to_eyes(image, left_eye, right_eye, size=SIZE):
    """uint8 [size, size, 3]: `image` (uint8 RGB [H, W, 3]) warped so that its eye centres `left_eye`
    and `right_eye` ((x, y), image-left first) land on `eye_targets(size)`; bicubic, black outside."""
    import cv2  # noqa: PLC0415

    matrix = eye_transform(left_eye, right_eye, size)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=None)
def _cascade(name):
    import cv2  # noqa: PLC0415

    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its {name} (from {cv2.data.haarcascades})")
    return cascade


def find_eyes(image, detector="yunet"):
    """((x, y) image-left eye, (x, y) image-right eye) of the largest face in uint8 RGB [H, W, 3], or
    None when no face is found; `detector` is "yunet" or "haar" (module docstring). Pixel centres are
    at integers."""
    if detector not in DETECTORS:
        raise ValueError(f"face detector {detector!r}; expected one of {', '.join(DETECTORS)}")
    image = np.ascontiguousarray(image, np.uint8)
    return _yunet_eyes(image) if detector == "yunet" else _haar_eyes(image)


_yunet_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _yunet():
    import cv2  # noqa: PLC0415

    if not os.path.exists(YUNET_MODEL):
        raise RuntimeError(f"the YuNet face model {YUNET_MODEL} is missing (it ships with glow_tf.demo)")
    return cv2.FaceDetectorYN.create(YUNET_MODEL, "", (320, 320), YUNET_SCORE, YUNET_NMS, 5000)


def _yunet_eyes(image):
    """YuNet's eyes of its largest face. Its landmarks are best on upright faces: when the eyes it finds
    are tilted by more than YUNET_LEVEL_DEGREES, it looks again at the photo turned so that they are
    level, and those eyes are turned back."""
    found = _yunet_detect(image)
    if found is None:
        return None
    eyes = found[0]
    (lx, ly), (rx, ry) = eyes
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    if abs(angle) > YUNET_LEVEL_DEGREES:
        level = _yunet_turned(image, angle, ((lx + rx) / 2, (ly + ry) / 2))
        if level is not None:
            eyes = level[0]
    return eyes


def _yunet_turned(image, angle, centre=None):
    """(eyes, score) of YuNet's largest face in `image` turned by `angle` degrees (counter-clockwise, about
    `centre`, default the middle), in the coordinates of `image`; None without a face."""
    import cv2  # noqa: PLC0415

    if angle == 0:
        return _yunet_detect(image)
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(centre or ((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    found = _yunet_detect(cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    if found is None:
        return None
    back = cv2.invertAffineTransform(matrix)
    return tuple((float(back[0, 0] * x + back[0, 1] * y + back[0, 2]), float(back[1, 0] * x + back[1, 1] * y + back[1, 2]))
                 for x, y in found[0]), found[1]


def _yunet_detect(image):
    """((image-left eye, image-right eye), score) of YuNet's largest face in uint8 RGB, or None. A
    detection row is (x, y, w, h, then the person's right eye, left eye, nose tip, right and left mouth
    corners as (x, y), then the score): the person's right eye is the image-left one."""
    import cv2  # noqa: PLC0415

    h, w = image.shape[:2]
    for side in YUNET_SIDES:
        scale = min(1.0, side / max(h, w))
        small = image if scale == 1 else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                    interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        with _yunet_lock:  # one network, not safe to share between threads
            net = _yunet()
            net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = net.detect(bgr)
        if faces is not None and len(faces):
            face = max(faces, key=lambda f: f[2] * f[3])
            sx, sy = small.shape[1] / w, small.shape[0] / h
            eyes = tuple((float((face[i] + 0.5) / sx - 0.5), float((face[i + 1] + 0.5) / sy - 0.5)) for i in (4, 6))
            return eyes, float(face[-1])
        if scale == 1 and max(h, w) <= YUNET_SIDES[-1]:
            break  # a small photo: the smaller side would see the same pixels
    return None


def _haar_eyes(image):
    """The Haar cascades' eyes (module docstring)."""
    import cv2  # noqa: PLC0415

    h, w = image.shape[:2]
    scale = min(1.0, DETECT_WIDTH / w)
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if scale < 1:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    side = min(gray.shape)
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 10),) * 2)
    if len(faces) == 0:
        return None
    fx, fy, fw, fh = max(faces, key=lambda f: f[2] * f[3])
    eyes = []
    for half in (0, 1):  # the face box's upper-left and upper-right quarters
        x0 = fx + half * fw // 2
        roi = gray[fy:fy + fh // 2, x0:x0 + fw // 2]
        found = _cascade("haarcascade_eye.xml").detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3,
                                                                 minSize=(max(8, fw // 10),) * 2)
        if len(found):
            ex, ey, ew, eh = max(found, key=lambda e: e[2] * e[3])
            eyes.append((x0 + ex + ew / 2, fy + ey + eh / 2))
        else:
            eyes.append((fx + FACE_BOX_EYES[half][0] * fw, fy + FACE_BOX_EYES[half][1] * fh))
    # box coordinates count pixel edges: back to the full image, then to pixel centres
    return tuple((x / scale - 0.5, y / scale - 0.5) for x, y in eyes)


def align_face(image, size=SIZE, detector="yunet"):
    """uint8 [size, size, 3] with the largest face's eyes on `eye_targets`, or None without a face."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    eyes = find_eyes(image, detector)
    return None if eyes is None else align_to_eyes(image, *eyes, size=size)
