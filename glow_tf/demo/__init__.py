"""The interactive demo (openai demo/): a Flask app served by waitress, with a static page
(static/index.html, demo.js, demo.css; no build step) and a JSON API over one loaded `Glow`.

Start it with `python -m glow_tf serve --logdir RUN`; see docs/demo.md.
"""
from glow_tf.demo.app import DemoState, create_app  # noqa: F401
