"""`python -m glow_tf serve`: prepare the run's directions and examples, then serve the app with
waitress (a pure-Python production WSGI server: threads, no C build, Linux / macOS / Windows)."""
import logging
import os
import sys

import tensorflow as tf
import waitress

from glow_tf.checkpoint import find_checkpoint
from glow_tf.demo.app import DemoState, create_app
from glow_tf.demo.startup import prepare


def build_state(args, glow):
    """The `DemoState` for the serve command's arguments."""
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: expected 1..65535")
    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: expected at least 1")
    logdir = args.logdir if args.logdir and os.path.isdir(args.logdir) else None
    checkpoint = args.graph or args.restore_path or find_checkpoint(args.logdir, args.which)
    found, examples, labels, flags = prepare(glow, logdir, checkpoint, args.directions, args.data_dir,
                                             class_dirs=not args.no_class_directions, batch_size=args.batch_size)
    problem = flags.get("problem")
    name = os.path.basename(os.path.normpath(args.graph or args.logdir or args.restore_path))
    title = f"Glow demo: {name}" + (f" ({problem})" if problem and problem != name else "")
    return DemoState(glow, found, examples, labels, align_default=args.align or problem == "celeba" or bool(args.graph), title=title)


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
        server = waitress.create_server(app, host=args.host, port=args.port, threads=args.threads,
                                        ident="glow-tf")
    except OSError as e:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    c = glow.config
    print(f"serving {state.title}: {c.image_size}x{c.image_size}x{c.n_channels}, {len(state.names)} direction(s), "
          f"{len(state.examples)} example(s) on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    server.run()
