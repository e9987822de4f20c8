"""Face alignment as the original demo's (demo/align_face.py): rotate, scale and shift a photo so the
eyes are level, a fixed distance apart and at fixed places of a 256 x 256 crop.

The original found the eyes with dlib's 68-landmark model (downloaded at set-up) and warped with
imutils' FaceAligner(desiredFaceWidth=256, desiredLeftEye=(0.371, 0.480)): the eyes' midpoint goes to
(128, 0.48 * 256) and their distance becomes (1 - 2 * 0.371) * 256 px. Here the same warp is fitted
to eye centres found by OpenCV's Haar cascades, which ship inside opencv-python-headless
(cv2.data.haarcascades): the largest frontal face, then the largest eye detection in each upper
quarter of it; when the eye cascade misses, the eyes' usual place in a Haar face box.
"""
import functools
import os

import numpy as np

SIZE = 256
LEFT_EYE = (0.371, 0.480)  # the image-left eye's place, as fractions of SIZE (the original's desiredLeftEye)
DETECT_WIDTH = 800  # the original detects on the photo resized to this width
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


def find_eyes(image):
    """((x, y) image-left eye, (x, y) image-right eye) of the largest face in uint8 RGB [H, W, 3], or
    None when no face is found."""
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


def align_face(image, size=SIZE):
    """uint8 [size, size, 3] with the largest face's eyes on `eye_targets`, or None without a face."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    eyes = find_eyes(image)
    return None if eyes is None else align_to_eyes(image, *eyes, size=size)
