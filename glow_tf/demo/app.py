"""The demo's JSON API (openai demo/server.py) over one `Glow`, as a Flask app.

Images travel as PNG data URLs. A latent stays on the server: `encode` and `random` return an `id`
that the other calls name (a bounded least-recently-used store), so a 256x256 face's 196,608
floats never cross the wire. Every call decodes through the model's public methods (`decode`,
`manipulate`, `mix`), which are compiled once and locked, so concurrent requests are safe.

Bad input gets a 4xx answer `{"error": "one line"}`; an unexpected failure a 500 with
`{"error": "internal error ..."}` and the traceback in the server's log only. Hostile input is refused
before it costs memory or time: the body's size (MAX_UPLOAD_BYTES, MAX_JSON_BYTES), the form's parts,
and an upload's format, declared size, shape and frame count, all read from its header before any pixel
is decoded (the limits below; docs/demo.md lists each with the answer it gets).
"""
import base64
import io
import logging
import math
import os
import re
import secrets
import threading
from collections import OrderedDict

import numpy as np
from flask import Flask, jsonify, request, send_from_directory
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from glow_tf import directions as direction_ops
from glow_tf import images as img
from glow_tf import latents as latent_ops

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a request's body (an upload with its form)
MAX_JSON_BYTES = 64 * 1024  # a JSON body (the API's are under 1 KB)
MAX_FORM_PARTS = 16  # multipart parts of an upload (it has 3: image, y, align)
MAX_FORM_FIELD_BYTES = 256 * 1024  # one text field of a multipart form (werkzeug reads 64 KB at a time)
MAX_PIXELS = 24_000_000  # width x height an upload declares (a 6000 x 4000 photo)
MAX_ASPECT = 10  # an upload's longer side / shorter side (the model sees its centre square)
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # the only decoders tried (no SVG, TIFF, EPS, PSD ...)
MAX_POINTS = 33  # frames of a range strip
STORE_BYTES = 256 * 1024 * 1024  # latents kept for the ids handed out
STORE_ENTRY_OVERHEAD = 512  # bytes of Python objects per kept latent (its array, key, tuple, dict node)
ALIGN_MIN_SIZE = 64  # face alignment is offered for RGB models at least this large, and for face models of any size
_log = logging.getLogger("glow_tf.demo")


class ApiError(Exception):
    """A bad request: answered with `status` and `{"error": message}`."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# --- PNG data URLs ----------------------------------------------------------------------------------
def png_bytes(image):
    """uint8 [H, W, C] -> PNG bytes (C = 1 gives a grey PNG)."""
    buf = io.BytesIO()
    img._pil(image).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image, mime="image/png", raw=None):
    """A data URL of one uint8 image as a PNG (or of `raw` bytes of type `mime`)."""
    raw = png_bytes(image) if raw is None else raw
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def gif_bytes(frames, duration_ms=150):
    """An animated GIF (forwards then back, looping) of uint8 frames [K, H, W, C], as bytes."""
    frames = list(frames) + list(frames[-2:0:-1])
    pils = [img._pil(f) for f in frames]
    buf = io.BytesIO()
    pils[0].save(buf, format="GIF", save_all=True, append_images=pils[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def read_upload(data, channels):
    """Uploaded file bytes -> a PIL image in the model's mode (RGB or L); ApiError when not a still image
    within the limits. The format, the declared size and the frame count come from the header (PIL opens
    lazily), so a small file declaring a huge image is refused without decoding it; only the first frame
    of a multi-picture JPEG (MPO, as some cameras write) is read. A truncated file is an error (PIL's
    LOAD_TRUNCATED_IMAGES stays False)."""
    expected = "expected a PNG, JPEG, GIF, BMP or WebP file"
    try:
        pil = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
    except Image.DecompressionBombError as e:  # PIL's own hard limit (2 x MAX_IMAGE_PIXELS), far above ours
        declared = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(declared.group(1)):,} pixels" if declared else "too many pixels"
        raise ApiError(f"the upload declares {size}; the limit is {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if b"<svg" in data[:4096].lower():
            raise ApiError(f"the upload is an SVG (vector) image, which is not accepted; {expected}") from None
        raise ApiError(f"the upload ({len(data)} bytes) is not a readable image: {e}; {expected}") from None
    with pil:
        w, h = pil.size
        if w * h > MAX_PIXELS:
            raise ApiError(f"the upload is {w} x {h} = {w * h:,} pixels; the limit is {MAX_PIXELS:,} pixels")
        if max(w, h) > MAX_ASPECT * min(w, h):
            raise ApiError(f"the upload is {w} x {h} pixels, {max(w, h) / max(min(w, h), 1):,.0f} times longer than "
                           f"wide; the limit is {MAX_ASPECT} to 1 (the model sees the centre square)")
        if pil.format != "MPO" and getattr(pil, "is_animated", False):  # reads the header of frame 2 only
            raise ApiError(f"the upload is an animated {pil.format} (more than one frame); upload a still image")
        try:
            pil.load()
            return pil.convert("L" if channels == 1 else "RGB")
        except (OSError, SyntaxError, ValueError) as e:
            raise ApiError(f"the upload is a truncated or corrupt {pil.format} ({len(data)} bytes): {e}") from None


# --- the latents handed out -------------------------------------------------------------------------
class LatentStore:
    """id -> (latent [D], class or None): the most recent `capacity` entries, thread-safe."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def put(self, z, y):
        key = secrets.token_hex(8)
        with self._lock:
            self._items[key] = (np.array(z, np.float32), y)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key, field="id"):
        if not isinstance(key, str):
            raise ApiError(f"{field} {latent_ops.short(key)}: expected the id string an encode or random call "
                           f"returned")
        with self._lock:
            if key not in self._items:
                raise ApiError(f"{field} {key!r} is unknown or expired (the server keeps the latest "
                               f"{self.capacity}); encode the image again", 404)
            self._items.move_to_end(key)
            return self._items[key]


# --- the model and what the page offers ---------------------------------------------------------------
class DemoState:
    """What the app serves: the model, its named directions, example images and the face aligner.

    Args:
      glow: a loaded `Glow`.
      directions: {name: direction [D]} (e.g. `directions.load_directions` and class directions).
      examples: uint8 [N, H, W, C] images offered for picking (and their classes `example_labels`).
      align_default: whether the page's "align face" box starts ticked.
      title: shown on the page.
      face: a face model (a CelebA run, OpenAI's graph): alignment is offered whatever its size.
      labels: {direction name: what the page calls it} (default: the name, underscores as spaces).
    """

    def __init__(self, glow, directions=None, examples=None, example_labels=None, align_default=False,
                 title="Glow demo", face=False, labels=None):
        cfg = glow.config
        self.glow, self.config, self.title = glow, cfg, title
        self.directions = {str(k): np.asarray(v, np.float32) for k, v in (directions or {}).items()}
        for name, d in self.directions.items():
            direction_ops.check_directions(d, cfg.n_dims)
            if not np.any(d):
                raise ValueError(f"direction {name!r} is all zeros")
        self.names = list(self.directions)
        self.matrix = (np.stack([self.directions[n] for n in self.names]) if self.names
                       else np.zeros((0, cfg.n_dims), np.float32))
        self.examples = (np.zeros((0, cfg.image_size, cfg.image_size, cfg.n_channels), np.uint8)
                         if examples is None else latent_ops.check_images(cfg, examples))
        self.example_labels = (None if example_labels is None or not cfg.ycond
                               else latent_ops.check_labels(cfg, np.asarray(example_labels), len(self.examples)))
        self.face = bool(face)
        self.labels = {n: (labels or {}).get(n, n.replace("_", " ")) for n in self.names}
        self.can_align = cfg.n_channels == 3 and (cfg.image_size >= ALIGN_MIN_SIZE or self.face)
        self.align_default = bool(align_default) and self.can_align
        self.store = LatentStore(max(64, STORE_BYTES // (4 * cfg.n_dims + STORE_ENTRY_OVERHEAD)))

    # --- request parsing ------------------------------------------------------------------------
    def label(self, value, field="y"):
        """The class of a request (a number, or its text in a form field), checked by latents.check_labels:
        None for an unconditional model; required (0..n_y-1) otherwise."""
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        try:
            checked = latent_ops.check_labels(self.config, value, 1)
        except ValueError as e:
            what = f"missing {field}" if value is None else f"{field} {latent_ops.short(value)}"
            raise ApiError(f"{what}: {e}") from None
        return int(checked[0]) if self.config.ycond else None

    def alphas(self, value, field="alphas"):
        """{name: coefficient} -> (names, float32 [A]) of known directions with finite coefficients."""
        if not isinstance(value, dict) or not value:
            raise ApiError(f"{field} {latent_ops.short(value)}: expected an object {{direction name: number}} "
                           f"with at least one of: {', '.join(self.names) or '(this run has no directions)'}")
        names, out = [], []
        for name, a in value.items():
            if name not in self.directions:
                raise ApiError(f"unknown direction {name!r}; available: {', '.join(self.names) or 'none'}")
            names.append(name)
            out.append(number(a, f"{field}[{name!r}]"))
        return names, np.asarray(out, np.float32)

    def temperature(self, value):
        try:
            return latent_ops.check_temperature(value, self.config.n_levels)
        except ValueError as e:
            raise ApiError(str(e)) from None

    # --- the model ------------------------------------------------------------------------------
    def encode(self, image, y):
        """(latent [D], reconstruction) of one uint8 image; the bin-centre noise makes it repeatable."""
        labels = None if y is None else [y]
        z = self.glow.encode(image[None], labels, noise="centre")[0]
        return z, self.glow.decode(z[None], labels)[0]

    def projection(self, z):
        if not self.names:
            return {}
        return dict(zip(self.names, (float(p) for p in self.glow.project(z, self.matrix))))

    def info(self):
        cfg = self.config
        return {"title": self.title, "image_size": cfg.image_size, "channels": cfg.n_channels,
                "n_levels": cfg.n_levels, "n_dims": cfg.n_dims, "ycond": cfg.ycond,
                "n_y": cfg.n_y if cfg.ycond else None, "directions": self.names, "labels": self.labels,
                "face": self.face,
                "can_align": self.can_align, "align_default": self.align_default,
                "examples": len(self.examples), "max_upload_bytes": MAX_UPLOAD_BYTES, "max_pixels": MAX_PIXELS,
                "max_aspect": MAX_ASPECT, "max_points": MAX_POINTS}


def number(value, field, minimum=None, maximum=None):
    """A finite float from JSON (not a bool or a string), optionally within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(f"{field} {latent_ops.short(value)}: expected a finite number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ApiError(f"{field} {value!r}: expected a number from {minimum} to {maximum}")
    return float(value)


def integer(value, field, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ApiError(f"{field} {latent_ops.short(value)}: expected an integer from {minimum} to {maximum}")
    return value


# --- the app ------------------------------------------------------------------------------------------
def create_app(state, static_folder=None):
    """The Flask app: `/` (the page), `/static/...` and the JSON API under `/api/` (docs/demo.md)."""
    static = static_folder or os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
    app = Flask(__name__, static_folder=static, static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES, MAX_FORM_PARTS=MAX_FORM_PARTS,
                      MAX_FORM_MEMORY_SIZE=MAX_FORM_FIELD_BYTES)
    app.json.sort_keys = False
    glow = state.glow

    def body():
        if (request.content_length or 0) > MAX_JSON_BYTES:
            raise ApiError(f"the JSON body ({request.content_length:,} bytes) is larger than the "
                           f"{MAX_JSON_BYTES // 1024} KB limit", 413)
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested deeper than Python's json parser goes
            data = None
        if not isinstance(data, dict):
            raise ApiError("expected a JSON object body (Content-Type: application/json)")
        return data

    def field(data, name):
        if name not in data or data[name] is None:
            raise ApiError(f"missing field {name!r}")
        return data[name]

    def latent(data, name="id"):
        return state.store.get(field(data, name), name)

    def decode_label(data, y):
        return state.label(data["y"]) if data.get("y") is not None else y

    @app.errorhandler(ApiError)
    def api_error(e):
        return jsonify(error=str(e)), e.status

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code == 413:
            size = f" ({request.content_length:,} bytes)" if request.content_length else ""
            message = f"the upload{size} is larger than the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit"
        else:
            message = f"{e.code} {e.name}: {request.method} {request.path}"
        return jsonify(error=message), e.code

    @app.errorhandler(Exception)
    def internal_error(e):
        _log.exception("demo request %s %s failed", request.method, request.path)
        return jsonify(error=f"internal error ({type(e).__name__}); see the server's log"), 500

    @app.get("/")
    def index():
        return send_from_directory(static, "index.html")

    @app.get("/api/info")
    def info():
        return jsonify(state.info())

    @app.get("/api/example/<int:k>")
    def example(k):
        if not 0 <= k < len(state.examples):
            raise ApiError(f"example {k} does not exist; there are {len(state.examples)}", 404)
        y = None if state.example_labels is None else int(state.example_labels[k])
        return jsonify(image=data_url(state.examples[k]), y=y)

    @app.post("/api/encode")
    def encode():
        """An uploaded file (multipart `image`, with form fields `y`, `align`) or {"example": k, "y": c}:
        crop/align, encode; returns the id, the model-size input, its reconstruction and projections."""
        aligned = False
        if request.mimetype == "multipart/form-data":
            if (request.content_length or 0) > MAX_UPLOAD_BYTES:
                raise RequestEntityTooLarge()
            try:
                upload = request.files.get("image")
            except RequestEntityTooLarge:
                raise ApiError(f"the form is too large: at most {MAX_FORM_PARTS} parts (it needs 'image', 'y', "
                               f"'align') and {MAX_FORM_FIELD_BYTES // 1024} KB per text field", 413) from None
            if upload is None:
                raise ApiError("missing file field 'image' (multipart/form-data)")
            pil = read_upload(upload.read(), state.config.n_channels)
            align = request.form.get("align", "0").lower() in ("1", "true", "on", "yes")
            if align:
                if not state.can_align:
                    raise ApiError(f"face alignment applies to RGB models of at least {ALIGN_MIN_SIZE} px and to face "
                                   f"models; this one is {state.config.image_size} px with {state.config.n_channels} "
                                   f"channel(s)")
                from glow_tf.demo.align import align_face  # noqa: PLC0415 (OpenCV only when asked)

                face = align_face(np.asarray(pil))
                if face is None:
                    raise ApiError("no face found in the upload; untick 'align face' to use it as it is", 422)
                pil, aligned = Image.fromarray(face), True
            image = img.centre_crop_resize(pil, state.config.image_size)
            image = image[..., None] if image.ndim == 2 else image
            y = state.label(request.form.get("y") or None)
        else:
            data = body()
            k = integer(field(data, "example"), "example", 0, len(state.examples) - 1) if len(state.examples) else None
            if k is None:
                raise ApiError("this server has no example images; upload one instead")
            image = state.examples[k]
            default = None if state.example_labels is None else int(state.example_labels[k])
            y = state.label(data.get("y", default))
        z, rec = state.encode(image, y)
        key = state.store.put(z, y)
        return jsonify(id=key, input=data_url(image), image=data_url(rec), y=y, aligned=aligned,
                       projection=state.projection(z))

    @app.post("/api/random")
    def random():
        """{"temperature": t or [t per level], "seed": s, "y": c} -> a sample and its id."""
        data = body()
        temperature = state.temperature(data.get("temperature", 0.7))
        seed = data.get("seed")
        seed = latent_ops.random_seed() if seed is None else integer(seed, "seed", 0, 2 ** 31 - 1)
        y = state.label(data.get("y"))
        z = glow.sample_latents(1, temperature, seed)[0]
        image = glow.decode(z[None], None if y is None else [y])[0]
        return jsonify(id=state.store.put(z, y), image=data_url(image), seed=seed, y=y,
                       projection=state.projection(z))

    @app.post("/api/manipulate")
    def manipulate():
        """{"id", "alphas": {name: a, ...}} -> decode(z + sum_a a * d_a) (manipulate / manipulate_all)."""
        data = body()
        z, y = latent(data)
        names, alphas = state.alphas(field(data, "alphas"))
        y = decode_label(data, y)
        d = np.stack([state.directions[n] for n in names])
        image = glow.manipulate(z, d, alphas, y)[0]
        return jsonify(image=data_url(image))

    @app.post("/api/mix")
    def mix():
        """{"id1", "id2", "alpha"} -> decode(z1 + alpha (z2 - z1)), with the first image's class."""
        data = body()
        (z1, y), (z2, _) = latent(data, "id1"), latent(data, "id2")
        alpha = number(field(data, "alpha"), "alpha")
        return jsonify(image=data_url(glow.mix(z1, z2, [alpha], decode_label(data, y))[0]))

    def range_answer(frames):
        return jsonify(images=[data_url(f) for f in frames], strip=data_url(img.strip(frames)),
                       gif=data_url(None, "image/gif", gif_bytes(frames)))

    @app.post("/api/manipulate_range")
    def manipulate_range():
        """{"id", "attr", "points", "scale", "alphas"?}: the strip of `attr` at range_alphas(points,
        scale) (-1 .. 1 for scale 1), on top of the other directions' `alphas`."""
        data = body()
        z, y = latent(data)
        attr = field(data, "attr")
        if attr not in state.directions:
            raise ApiError(f"unknown direction {attr!r}; available: {', '.join(state.names) or 'none'}")
        points = integer(data.get("points", 5), "points", 2, MAX_POINTS)
        scale = number(data.get("scale", 1.0), "scale", 0.0, 10.0)
        names, base = state.alphas(data["alphas"]) if data.get("alphas") else ([], np.zeros(0, np.float32))
        keep = [i for i, n in enumerate(names) if n != attr]
        names, base = [names[i] for i in keep] + [attr], base[keep]
        ks = direction_ops.range_alphas(points, scale)
        alphas = np.concatenate([np.tile(base, (points, 1)), ks[:, None]], axis=1)
        d = np.stack([state.directions[n] for n in names])
        return range_answer(glow.manipulate(z, d, alphas, decode_label(data, y)))

    @app.post("/api/mix_range")
    def mix_range():
        """{"id1", "id2", "points"}: the strip from the first latent to the second (alpha 0 .. 1)."""
        data = body()
        (z1, y), (z2, _) = latent(data, "id1"), latent(data, "id2")
        points = integer(data.get("points", 5), "points", 2, MAX_POINTS)
        return range_answer(glow.mix(z1, z2, np.linspace(0.0, 1.0, points), decode_label(data, y)))

    return app
