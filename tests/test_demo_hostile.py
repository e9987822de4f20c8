"""The demo server (`python -m glow_tf serve`, the real command on 127.0.0.1) under hostile input and
load, over real HTTP: each attack gets a 4xx with one JSON error naming the limit, within a bounded
time and a bounded rise of the server's peak memory (VmHWM from /proc, reset before each attack), and
the server still gives the same answer to a normal request afterwards. Then bench/demo_load.py's quick
mode against the same run (no errors, consistent figures).
"""
import base64
import contextlib
import io
import json
import os
import select
import socket
import struct
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

from demo_load import DemoServer, json_body, multipart, proc_status, request  # noqa: E402

REQUEST_TIMEOUT = 3  # the server's --request_timeout here (seconds)
CONNECTION_LIMIT = 16  # and its --connection_limit
SERVER_FLAGS = ("--threads", 2, "--request_timeout", REQUEST_TIMEOUT, "--connection_limit", CONNECTION_LIMIT)
ANSWER_WITHIN = 10.0  # seconds for any single attack's answer (the machine is shared and slow)
PEAK_RISE_MB = 64  # the most an attack may raise the server's peak resident memory


# --- the run and the server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(digits_run):
    """The real `serve` command on the session's trained digits run (tests/conftest.py)."""
    with DemoServer(digits_run, *SERVER_FLAGS) as s:
        s.normal = normal_request(s)  # the answer every later normal request must equal
        s.rss_start = proc_status(s.pid, "VmRSS")
        yield s


def normal_request(server):
    """(status, answer) of a normal upload: example 0's PNG encoded as class 3."""
    status, example = request(server.url, "GET", "/api/example/0", timeout=60)
    assert status == 200, example
    png = base64.b64decode(example["image"].split(",", 1)[1])
    body, headers = multipart([("y", 3)], [("image", png)])
    return request(server.url, "POST", "/api/encode", body, headers, timeout=60)


def assert_still_serving(server):
    status, answer = normal_request(server)
    assert status == 200, answer
    assert answer["image"] == server.normal[1]["image"] and answer["input"] == server.normal[1]["input"]


def peak_rise_mb(server, attack):
    """(attack()'s result, the rise of the server's peak resident memory over its resident memory before)."""
    with open(f"/proc/{server.pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current VmRSS
    before = proc_status(server.pid, "VmRSS")
    result = attack()
    return result, proc_status(server.pid, "VmHWM") - before


# --- the attacks --------------------------------------------------------------------------------------
def png_declaring(width, height, rows=None):
    """An 8-bit grey PNG whose header declares width x height, with `rows` rows of zeros (all by default:
    a real decompression bomb, megabytes of pixels in a few kilobytes) compressed into its data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    data = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def gif_frames(n):
    """A 1 x 1 GIF of `n` frames (23 bytes each), written by hand: PIL's writer would merge equal frames."""
    frame = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s
             b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # image descriptor: 1 x 1 at (0, 0)
             b"\x02\x02\x44\x01\x00")  # LZW minimum code size 2; codes clear, 0, end
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff" + frame * n + b"\x3b"


def truncated_jpeg():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) * 6 // 10]


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000">'
       b'<rect width="100%" height="100%" fill="red"/></svg>')


def upload(raw, fields=(("y", 0),)):
    return ("/api/encode", *multipart(list(fields), [("image", raw)]))


def many_fields(n):
    return upload(png_declaring(8, 8), [(f"f{k}", k) for k in range(n)])


def deep_json(depth):
    return ("/api/random", b"[" * depth + b"]" * depth, {"Content-Type": "application/json"})


def big_json(megabytes):
    return ("/api/random", *json_body({"temperature": 0.5, "y": 1, "pad": "x" * (megabytes << 20)}))


ATTACKS = [  # (name, the request (path, body, headers), its status, what its error must say)
    ("PNG declaring 100000x100000", lambda: upload(png_declaring(100_000, 100_000, rows=1)), 400,
     "declares 10,000,000,000 pixels; the limit is 24,000,000 pixels"),
    ("PNG bomb 9000x9000 (81 Mpx of zeros in 80 KB)", lambda: upload(png_declaring(9000, 9000)), 400,
     "9000 x 9000 = 81,000,000 pixels; the limit is 24,000,000 pixels"),
    ("1x50000 image", lambda: upload(png_declaring(1, 50_000)), 400,
     "1 x 50000 pixels, 50,000 times longer than wide; the limit is 10 to 1"),
    ("truncated JPEG", lambda: upload(truncated_jpeg()), 400, "truncated"),
    ("SVG", lambda: upload(SVG), 400, "SVG (vector) image, which is not accepted; expected a PNG, JPEG"),
    ("GIF with 10,000 frames", lambda: upload(gif_frames(10_000)), 400,
     "animated GIF (more than one frame); upload a still image"),
    ("10,000 form fields", lambda: many_fields(10_000), 413, "at most 16 parts"),
    ("JSON nested 20,000 deep", lambda: deep_json(20_000), 400, "expected a JSON object body"),
    ("5 MB JSON body", lambda: big_json(5), 413, "larger than the 64 KB limit"),
]


def test_the_attack_files_are_what_they_claim():
    """The attacks' own truth: PIL reads what they declare (the sizes, 10,000 frames, a truncation)."""
    with Image.open(io.BytesIO(png_declaring(9000, 9000))) as im:
        assert im.size == (9000, 9000) and len(png_declaring(9000, 9000)) < 100_000
    with Image.open(io.BytesIO(png_declaring(1, 50_000))) as im:
        im.load()
        assert im.size == (1, 50_000)
    with Image.open(io.BytesIO(gif_frames(10_000))) as im:
        assert im.format == "GIF" and im.n_frames == 10_000 and len(gif_frames(10_000)) < 250_000
    with Image.open(io.BytesIO(truncated_jpeg())) as im, pytest.raises(OSError, match="truncated"):
        im.load()
    assert len(many_fields(10_000)[1]) < 1 << 20  # far under the 10 MB body limit: the parts are what is refused


@pytest.mark.parametrize("name,make,status,message", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_gets_a_4xx_in_bounded_time_and_memory(server, name, make, status, message):
    path, body, headers = make()
    t0 = time.time()
    (code, answer), rise = peak_rise_mb(server, lambda: request(server.url, "POST", path, body, headers,
                                                                timeout=ANSWER_WITHIN))
    elapsed = time.time() - t0
    assert code == status, answer
    assert isinstance(answer, dict) and list(answer) == ["error"], answer
    assert message in answer["error"] and "\n" not in answer["error"], answer
    assert elapsed < ANSWER_WITHIN, f"{name}: answered after {elapsed:.1f} s"
    assert rise < PEAK_RISE_MB, f"{name}: the server's peak memory rose by {rise:.0f} MB"
    assert_still_serving(server)


def encoded(image, fmt):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def test_ordinary_uploads_within_the_limits_are_accepted(server):
    """The limits leave real uploads alone: a 600 KB noisy PNG (several of werkzeug's 64 KB reads), a
    3000 x 300 strip (the largest aspect allowed), a JPEG and a still GIF are encoded from what they show."""
    from glow_tf import images as img  # noqa: PLC0415
    from glow_tf.demo.app import data_url  # noqa: PLC0415

    rng = np.random.default_rng(1)
    cases = [(rng.integers(0, 256, (450, 450, 3), dtype=np.uint8), "PNG"),
             (np.tile(rng.integers(0, 256, (300, 1, 3), dtype=np.uint8), (1, 3000, 1)), "PNG"),
             (rng.integers(0, 256, (800, 1000, 3), dtype=np.uint8), "JPEG"),
             (rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), "GIF")]
    for image, fmt in cases:
        raw = encoded(image, fmt)
        status, answer = request(server.url, "POST", *upload(raw), timeout=60)
        assert status == 200, (fmt, image.shape, answer)
        with Image.open(io.BytesIO(raw)) as pil:
            assert answer["input"] == data_url(img.centre_crop_resize(pil.convert("RGB"), 8)), (fmt, image.shape)
    assert len(encoded(*cases[0])) > 600_000


def raw_exchange(port, head, timeout=ANSWER_WITHIN):
    """Sends `head` on a fresh connection and reads until the server closes it: (status, JSON answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server):
    """Content-Length 500 MB and no body: the server answers at once instead of waiting to buffer it."""
    t0 = time.time()
    (code, answer), rise = peak_rise_mb(server, lambda: raw_exchange(
        server.port, b"POST /api/encode HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 524288000\r\n\r\n"))
    assert code == 413 and "larger than the 10 MB limit" in answer["error"], answer
    assert time.time() - t0 < ANSWER_WITHIN and rise < PEAK_RISE_MB
    assert_still_serving(server)


def test_headers_too_large_get_a_json_431(server):
    """Exactly 64 KB of unfinished headers (the server reads them all, so it can answer before closing)."""
    head = b"GET /api/info HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%03d: %s\r\n" % (k, b"y" * 1000) for k in range(70))
    code, answer = raw_exchange(server.port, head[:64 * 1024])
    assert code == 431 and "larger than the 64 KB limit" in answer["error"], answer
    assert_still_serving(server)


class SlowClient(threading.Thread):
    """A slowloris connection: sends `head` then `trickle` one byte every `every` seconds, forever,
    until the server answers; records when (seconds after `t0`) and what it answered."""

    def __init__(self, port, head, trickle, t0, every=0.2):
        super().__init__(daemon=True)
        self.port, self.head, self.trickle, self.t0, self.every = port, head, trickle, t0, every
        self.answer, self.when = b"", None

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            try:
                s.sendall(self.head)
                k = 0
                while time.time() - self.t0 < 60 and not select.select([s], [], [], self.every)[0]:
                    s.sendall(self.trickle[k % len(self.trickle):][:1])
                    k += 1
            except OSError:
                pass  # the server closed the connection while we were sending
            try:
                while chunk := s.recv(65536):
                    self.answer += chunk
            except OSError:
                pass
            self.when = time.time() - self.t0


def test_slow_clients_get_a_408_and_cannot_hold_the_server(server):
    """More slowloris connections than the server's connection limit, half trickling their headers and
    half their body: a normal request is still answered (once the server has timed the first ones out),
    and every slow connection gets a JSON 408 naming the limit within about twice the limit."""
    t0 = time.time()
    n = CONNECTION_LIMIT + 4
    slow = [SlowClient(server.port, b"GET /api/info HTTP/1.1\r\nHost: x\r\n", b"X-Slow: yes\r\n", t0)
            for _ in range(n // 2)]
    slow += [SlowClient(server.port, b"POST /api/random HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100000\r\n\r\n", b" ", t0) for _ in range(n - n // 2)]
    (code, info), rise = peak_rise_mb(server, lambda: slow_then_normal(server, slow))
    normal_after = time.time() - t0
    for c in slow:
        c.join(60)
    assert code == 200 and info["image_size"] == 8, info
    assert normal_after < REQUEST_TIMEOUT + ANSWER_WITHIN, f"a normal request waited {normal_after:.1f} s"
    for c in slow:
        assert c.answer.startswith(b"HTTP/1.1 408 Request Timeout"), c.answer[:200]
        error = json.loads(c.answer.partition(b"\r\n\r\n")[2])["error"]
        assert f"within the {REQUEST_TIMEOUT} s limit" in error, error
        assert c.when < 2 * REQUEST_TIMEOUT + ANSWER_WITHIN, f"a slow client was answered after {c.when:.1f} s"
    assert rise < PEAK_RISE_MB
    assert_still_serving(server)


def slow_then_normal(server, slow):
    for c in slow:
        c.start()
    time.sleep(1.0)  # all connected: the server's connection limit is reached
    return request(server.url, "GET", "/api/info", timeout=REQUEST_TIMEOUT + ANSWER_WITHIN)


def test_the_attacked_server_kept_its_memory(server):
    """After every attack above, the server's resident memory is within PEAK_RISE_MB of where it began."""
    assert proc_status(server.pid, "VmRSS") - server.rss_start < PEAK_RISE_MB
    assert_still_serving(server)


def test_percentile_is_the_nearest_rank():
    import demo_load  # noqa: PLC0415

    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert [demo_load.percentile(values, q) for q in (1, 50, 99, 100)] == [1, 50, 99, 100]
    assert demo_load.percentile([7.0], 99) == 7.0 and demo_load.percentile([], 50) is None


def test_load_quick(digits_run):
    """bench/demo_load.py --quick (2 clients, 3 s) through its main: no errors, and figures that add up."""
    import demo_load  # noqa: PLC0415

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert demo_load.main(["--logdir", str(digits_run), "--quick"]) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    by = {r["endpoint"]: r for r in records if "endpoint" in r}
    total = next(r for r in records if "clients" in r)
    assert set(by) == {"encode", "manipulate", "random", "all"} and total["clients"] == 2
    assert sum(by[e]["requests"] for e in ("encode", "manipulate", "random")) == by["all"]["requests"]
    assert by["all"]["requests"] == total["requests"] and all(by[e]["requests"] > 0 for e in by)
    assert total["errors"] == 0 and all(r["errors"] == 0 for r in by.values())
    assert 3 <= total["seconds"] < 30 and total["requests_per_s"] == pytest.approx(total["requests"] / total["seconds"],
                                                                                      rel=0.01)
    for r in by.values():
        assert 0 < r["p50_ms"] <= r["p99_ms"] < 1000 * total["seconds"], r
    assert 100 < total["rss_before_mb"] <= total["rss_max_mb"] and total["rss_after_mb"] <= total["rss_max_mb"]
    assert total["rss_after_mb"] - total["rss_before_mb"] < PEAK_RISE_MB, total
    assert "demo server under load: 2 clients" in out.getvalue() and "server RSS (MB)" in out.getvalue()


def test_the_quick_start_run_gets_class_directions_and_test_examples():
    """The quick start trains on digits_4bit: the server reads its labelled test split like digits'
    (it offered no class directions before, so bench/demo_load.py had nothing to manipulate)."""
    import data_loaders  # noqa: PLC0415
    import glow_tf  # noqa: PLC0415
    from glow_tf.demo.startup import run_test_data  # noqa: PLC0415

    config = glow_tf.GlowConfig(image_size=8, n_levels=2, depth=1, width=8, n_bits_x=4)
    x, y = run_test_data({"problem": "digits_4bit"}, config)
    data = data_loaders.get_data("digits_4bit", image_size=8, dal=0)
    np.testing.assert_array_equal(x, data._x_test)  # noqa: SLF001
    np.testing.assert_array_equal(y, data._y_test)  # noqa: SLF001
    assert sorted(np.unique(y)) == list(range(10)) and len(np.unique(x)) <= 16
