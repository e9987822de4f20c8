"""`python -m glow_tf serve`: prepare the run's directions and examples, then serve the app with
waitress (a pure-Python production WSGI server: threads, no C build, Linux / macOS / Windows).

Waitress reads requests on one asynchronous loop and hands only complete ones to its `--threads`
workers, so a slow client holds a connection, not a thread. The connections are bounded
(`--connection_limit`), and each request must arrive whole within `--request_timeout` seconds of its
first byte (or of the connection opening): a client that trickles its headers or body (slowloris) gets a
408 and is closed, so at most `connection_limit` of them hold the server for at most that long. Waitress's
own refusals (a body over BODY_BUFFER_LIMIT, headers over HEADER_LIMIT, a malformed request, the 408)
are JSON `{"error": ...}` answers like the app's.
"""
import json
import logging
import os
import sys
import time

import tensorflow as tf
import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from waitress.utilities import BadRequest, RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from glow_tf.checkpoint import find_checkpoint
from glow_tf.demo.app import MAX_UPLOAD_BYTES, DemoState, create_app
from glow_tf.demo.startup import face_labels, is_face_model, prepare, run_flags

REQUEST_TIMEOUT = 60  # seconds for a whole request (a 10 MB upload at 1.5 Mbit/s) and for an idle connection
CONNECTION_LIMIT = 100  # open connections; more wait in the listen backlog
HEADER_LIMIT = 64 * 1024  # a request line and its headers
BODY_BUFFER_LIMIT = 4 * MAX_UPLOAD_BYTES  # bodies up to this are buffered (to disk above 512 KB) and get the
# app's 413 over MAX_UPLOAD_BYTES; longer ones are refused as soon as their headers arrive


class RequestTimeout(BadRequest):
    code = 408
    reason = "Request Timeout"


class JsonErrorTask(ErrorTask):
    """Waitress's own error answers (see the module docstring) as one-line JSON."""

    def execute(self):
        e, request = self.request.error, self.request
        if isinstance(e, RequestEntityTooLarge):
            size = f" ({request.content_length:,} bytes)" if request.content_length else ""
            message = (f"the upload{size} is larger than the {MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit (refused "
                       f"unread above {BODY_BUFFER_LIMIT // (1024 * 1024)} MB)")
        elif isinstance(e, RequestHeaderFieldsTooLarge):
            message = f"the request line and headers are larger than the {HEADER_LIMIT // 1024} KB limit"
        elif isinstance(e, RequestTimeout):
            message = e.body
        else:
            message = f"{e.code} {e.reason}: {e.body}"
        body = json.dumps({"error": message}).encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """A waitress connection that remembers when its unfinished request began (`request_started`, None
    between requests) and answers 408 when told it took too long (`time_out`)."""

    error_task_class = JsonErrorTask

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request_started = self.creation_time  # a connection that sends nothing is timed from its opening
        self.timed_out = False

    def received(self, data):
        if self.timed_out:
            return False
        if self.request_started is None:
            self.request_started = time.time()
        done = super().received(data)
        if self.request is None:  # every byte so far belongs to complete requests
            self.request_started = None
        return done

    def time_out(self, limit):
        """Drops the unfinished request and queues a 408 answer (runs on waitress's loop thread, which is
        also the only reader of this connection)."""
        with self.requests_lock:
            if self.request is not None:
                self.request.close()
            error = self.parser_class(self.adj)
            error.version = "1.1"
            error.error = RequestTimeout(f"the request did not arrive whole within the {limit} s limit "
                                         f"(--request_timeout); the connection is closed")
            error.completed, self.request, self.request_started, self.timed_out = True, None, None, True
            self.requests.append(error)
        self.server.add_task(self)


def guard(servers, request_timeout):
    """Gives waitress's listening `servers` GuardedChannel connections and a maintenance pass (run every
    second) that times out requests older than `request_timeout` seconds."""
    for server in servers:
        waitress_maintenance = server.maintenance

        def maintenance(now, server=server, waitress_maintenance=waitress_maintenance):
            for channel in list(server.active_channels.values()):
                started = getattr(channel, "request_started", None)
                if (started is not None and now - started > request_timeout and not channel.requests
                        and not channel.will_close and not channel.close_when_flushed):
                    channel.time_out(request_timeout)
            waitress_maintenance(now)  # then closes connections idle (between requests) for channel_timeout

        server.channel_class = GuardedChannel
        server.maintenance = maintenance


def create_server(app, host, port, threads, request_timeout=REQUEST_TIMEOUT, connection_limit=CONNECTION_LIMIT):
    """The waitress server of the demo with the limits above (not yet running)."""
    listeners = {}
    server = waitress.create_server(app, map=listeners, host=host, port=port, threads=threads, ident="glow-tf",
                                    connection_limit=connection_limit, channel_timeout=request_timeout,
                                    cleanup_interval=1, max_request_header_size=HEADER_LIMIT,
                                    max_request_body_size=BODY_BUFFER_LIMIT)
    guard([s for s in listeners.values() if hasattr(s, "active_channels")], request_timeout)
    return server


def build_state(args, glow):
    """The `DemoState` for the serve command's arguments."""
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: expected 1..65535")
    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: expected at least 1")
    if args.request_timeout < 1:
        raise ValueError(f"--request_timeout {args.request_timeout}: expected at least 1 (seconds)")
    if args.connection_limit < args.threads:
        raise ValueError(f"--connection_limit {args.connection_limit}: expected at least --threads ({args.threads})")
    logdir = args.logdir if args.logdir and os.path.isdir(args.logdir) else None
    checkpoint = args.graph or args.restore_path or find_checkpoint(args.logdir, args.which)
    face = is_face_model(run_flags(logdir), args.graph)
    found, examples, labels, flags = prepare(glow, logdir, checkpoint, args.directions, args.data_dir,
                                             class_dirs=not args.no_class_directions, batch_size=args.batch_size,
                                             face=face, examples_dir=args.examples)
    problem = flags.get("problem")
    name = os.path.basename(os.path.normpath(args.graph or args.logdir or args.restore_path))
    title = f"Glow demo: {name}" + (f" ({problem})" if problem and problem != name else "")
    return DemoState(glow, found, examples, labels, align_default=args.align or face, title=title, face=face,
                     labels=face_labels(found) if face else None)


def on_device(app, device):
    """The WSGI app with every request run under `tf.device(device)` (a device scope is per thread,
    and waitress answers on its own threads)."""

    def wrapped(environ, start_response):
        with tf.device(device):
            return app(environ, start_response)
    return wrapped


def run(args, glow):
    """Serves until interrupted."""
    state = build_state(args, glow)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    app = create_app(state)
    if args.cpu:
        app.wsgi_app = on_device(app.wsgi_app, "/CPU:0")
    try:
        server = create_server(app, args.host, args.port, args.threads, args.request_timeout, args.connection_limit)
    except OSError as e:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    c = glow.config
    print(f"serving {state.title}: {c.image_size}x{c.image_size}x{c.n_channels}, {len(state.names)} direction(s), "
          f"{len(state.examples)} example(s) on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    server.run()
