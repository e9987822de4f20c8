#!/usr/bin/env python
"""The demo server under load: concurrent clients mixing encode (a PNG upload), manipulate and random
against `python -m glow_tf serve` started here on 127.0.0.1, each client on its own keep-alive
connection, for a fixed time.

    python bench/demo_load.py --logdir runs/digits                    # 32 clients for 60 s
    python bench/demo_load.py --logdir RUN --clients 8 --seconds 20 --threads 4
    python bench/demo_load.py --logdir RUN --quick                    # 2 clients for 3 s (for the tests)

Prints requests/s, p50 / p99 latency per endpoint and overall, the error count (any answer but 200, or
a failed connection; must be 0, else the exit code is 1) and the server process's resident memory
(VmRSS from /proc): after warm-up, half-way, at the end, and the largest seen (sampled every 0.5 s).
The clients run in this process (threads; the server computes in another), so on a small machine they
share its cores with the server: requests/s is what the whole machine does, not the server alone.
"""
import argparse
import base64
import http.client
import io
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENDPOINTS = ("encode", "manipulate", "random")
MIX = {"encode": 1, "manipulate": 2, "random": 1}  # relative frequency of each call


# --- the server ----------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, key):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(f"{key} not in /proc/{pid}/status")


class DemoServer:
    """`python -m glow_tf serve --logdir RUN --cpu` on a free port of 127.0.0.1, as a context manager:
    `url`, `port`, `pid`, `rss_mb()`, and `log()` (what it printed)."""

    def __init__(self, logdir, *flags, startup_timeout=300):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile("w+")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        self.proc = subprocess.Popen([sys.executable, "-m", "glow_tf", "serve", "--logdir", str(logdir), "--port",
                                      str(self.port), "--cpu", *map(str, flags)], cwd=REPO, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.time() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                status, _ = request(self.url, "GET", "/api/info", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.close()
                raise RuntimeError(f"the demo server did not answer within {startup_timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def rss_mb(self):
        return proc_status(self.pid, "VmRSS")

    def log(self):
        self._log.seek(0)
        return self._log.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- requests -----------------------------------------------------------------------------------------
def request(url, method, path, body=None, headers=None, timeout=120, conn=None):
    """(status, parsed JSON or text) of one request; on `conn` (an HTTPConnection, kept alive) if given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(url.split("//", 1)[1], timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        text = r.read()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text.decode("utf-8", "replace")
    finally:
        if own:
            conn.close()


def json_body(data):
    return json.dumps(data).encode(), {"Content-Type": "application/json"}


def multipart(fields, files):
    """(body, headers) of a multipart/form-data request: `fields` [(name, text)], `files` [(name, bytes)]."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.png"\r\n'
              f'Content-Type: application/octet-stream\r\n\r\n'.encode() + raw + b"\r\n" for k, raw in files]
    return (b"".join(parts) + f"--{boundary}--\r\n".encode(),
            {"Content-Type": f"multipart/form-data; boundary={boundary}"})


class Client(threading.Thread):
    """One user: on its own connection, calls MIX's endpoints at random until `stop_at`; records
    (endpoint, seconds, ok) of each call."""

    def __init__(self, url, info, uploads, stop_at, seed):
        super().__init__(daemon=True)
        self.url, self.info, self.uploads, self.stop_at = url, info, uploads, stop_at
        self.rng = random.Random(seed)
        self.records, self.errors = [], []
        self.ids = []

    def label(self):
        return self.rng.randrange(self.info["n_y"]) if self.info["ycond"] else None

    def call(self, name):
        y = self.label()
        if name == "encode":
            fields = [("y", y)] if y is not None else []
            body, headers = multipart(fields, [("image", self.rng.choice(self.uploads))])
            return "/api/encode", body, headers
        if name == "manipulate" and self.ids:  # (before a first id: a random call, which gives one)
            alphas = {self.rng.choice(self.info["directions"]): round(self.rng.uniform(-1, 1), 3)}
            return ("/api/manipulate", *json_body({"id": self.rng.choice(self.ids), "alphas": alphas}))
        return ("/api/random", *json_body({"temperature": round(self.rng.uniform(0, 1), 3),
                                           "seed": self.rng.randrange(2 ** 31), "y": y}))

    def run(self):
        conn = http.client.HTTPConnection(self.url.split("//", 1)[1], timeout=120)
        names = [n for n in ENDPOINTS for _ in range(MIX[n])]
        try:
            while time.time() < self.stop_at:
                path, body, headers = self.call(self.rng.choice(names))
                name = path.rsplit("/", 1)[1]
                t0 = time.perf_counter()
                try:
                    status, answer = request(self.url, "POST", path, body, headers, conn=conn)
                except (OSError, http.client.HTTPException) as e:
                    status, answer = None, f"{type(e).__name__}: {e}"
                    conn.close()
                    conn = http.client.HTTPConnection(self.url.split("//", 1)[1], timeout=120)
                ok = status == 200
                self.records.append((name, time.perf_counter() - t0, ok))
                if not ok:
                    self.errors.append(f"{name}: {status} {str(answer)[:200]}")
                elif "id" in answer:
                    self.ids = (self.ids + [answer["id"]])[-16:]
        finally:
            conn.close()


def percentile(values, q):
    """The q-th percentile (0..100) of `values`, by the nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))] if values else None


def upload_images(url, info, n=8):
    """PNG bytes of the server's example images (what a user of the page would upload)."""
    out = []
    for k in range(min(n, info["examples"])):
        _, answer = request_json(url, "GET", f"/api/example/{k}")
        out.append(base64.b64decode(answer["image"].split(",", 1)[1]))
    if not out:  # a server without examples: flat grey images of the model's size
        from PIL import Image  # noqa: PLC0415

        for v in range(0, 256, 64):
            buf = io.BytesIO()
            Image.new("RGB" if info["channels"] == 3 else "L", (info["image_size"],) * 2, (v,) * 3).save(buf, "PNG")
            out.append(buf.getvalue())
    return out


def request_json(url, method, path, body=None):
    data, headers = json_body(body) if body is not None else (None, {})
    status, answer = request(url, method, path, data, headers)
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {answer}")
    return status, answer


class RssMonitor(threading.Thread):
    """Samples the server's VmRSS every `every` seconds: (seconds since start, MB)."""

    def __init__(self, server, every=0.5):
        super().__init__(daemon=True)
        self.server, self.every, self.samples = server, every, []
        self.stopped = threading.Event()
        self.t0 = time.time()

    def run(self):
        while not self.stopped.is_set():
            self.samples.append((time.time() - self.t0, self.server.rss_mb()))
            self.stopped.wait(self.every)


def load(server, clients, seconds, seed=0):
    """Runs the load against a started `DemoServer`; returns (per-endpoint records, total record, errors)."""
    _, info = request_json(server.url, "GET", "/api/info")
    if not info["directions"]:
        raise ValueError("the server offers no directions to manipulate: serve a run with labelled local data "
                         "(class directions) or give --directions FILE")
    uploads = upload_images(server.url, info)
    warm = Client(server.url, info, uploads, 0, seed)  # one call of each kind: compiled, allocated
    conn = http.client.HTTPConnection(server.url.split("//", 1)[1], timeout=300)
    for name in ENDPOINTS:
        path, body, headers = warm.call(name)
        status, answer = request(server.url, "POST", path, body, headers, conn=conn)
        if status != 200:
            raise RuntimeError(f"warm-up {path}: {status} {answer}")
        if "id" in answer:
            warm.ids.append(answer["id"])
    conn.close()
    rss_before = server.rss_mb()
    monitor = RssMonitor(server)
    monitor.start()
    t0 = time.time()
    workers = [Client(server.url, info, uploads, t0 + seconds, seed + 1 + k) for k in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.time() - t0
    monitor.stopped.set()
    monitor.join()
    rss_after = server.rss_mb()
    records = [r for w in workers for r in w.records]
    errors = [e for w in workers for e in w.errors]
    rows = []
    for name in (*ENDPOINTS, "all"):
        mine = [r for r in records if name in ("all", r[0])]
        ms = [1000 * t for _, t, _ in mine]
        rows.append({"endpoint": name, "requests": len(mine), "requests_per_s": round(len(mine) / elapsed, 2),
                     "p50_ms": round(percentile(ms, 50), 1) if ms else None,
                     "p99_ms": round(percentile(ms, 99), 1) if ms else None,
                     "errors": sum(not ok for _, _, ok in mine)})
    rss = [mb for t, mb in monitor.samples] + [rss_after]
    mid = [mb for t, mb in monitor.samples if t >= elapsed / 2] or [rss_after]
    total = {"clients": clients, "seconds": round(elapsed, 2), "requests": len(records),
             "requests_per_s": round(len(records) / elapsed, 2), "errors": len(errors),
             "rss_before_mb": round(rss_before, 1), "rss_mid_mb": round(mid[0], 1),
             "rss_after_mb": round(rss_after, 1), "rss_max_mb": round(max(rss), 1)}
    return rows, total, errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logdir", required=True, help="a trained run to serve (e.g. the quick start's runs/digits)")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seconds", type=float, default=60, help="how long the load lasts (default 60)")
    p.add_argument("--threads", type=int, default=4, help="the server's --threads (default 4, its default)")
    p.add_argument("--directions", help="the server's --directions (a run without class directions needs one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clients' choices")
    p.add_argument("--quick", action="store_true", help="2 clients for 3 s (for the tests)")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.seconds = 2, 3.0
    if args.clients < 1 or args.seconds <= 0:
        p.error(f"--clients {args.clients} --seconds {args.seconds}: expected at least 1 client and a positive time")
    if not os.path.isdir(args.logdir):
        p.error(f"--logdir {args.logdir}: no such directory")
    common.emit({"machine": common.machine()})
    flags = ["--threads", args.threads, "--connection_limit", max(100, 2 * args.clients)]
    flags += ["--directions", args.directions] if args.directions else []
    with DemoServer(args.logdir, *flags) as server:
        try:
            rows, total, errors = load(server, args.clients, args.seconds, args.seed)
        except ValueError as e:
            p.error(str(e))
    for row in rows:
        common.emit(row)
    common.emit(total)
    common.print_table(f"demo server under load: {args.clients} clients for {total['seconds']} s, "
                       f"server --threads {args.threads}", ["endpoint", "requests", "req/s", "p50 ms", "p99 ms",
                                                            "errors"],
                       [[r["endpoint"], r["requests"], common.fmt(r["requests_per_s"]), common.fmt(r["p50_ms"]),
                         common.fmt(r["p99_ms"]), r["errors"]] for r in rows])
    print(f"  server RSS (MB): {total['rss_before_mb']} after warm-up, {total['rss_mid_mb']} half-way, "
          f"{total['rss_after_mb']} at the end (largest {total['rss_max_mb']})")
    for e in errors[:10]:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
