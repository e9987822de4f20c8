"""The `glow-tf` console script (pyproject.toml): `glow-tf COMMAND ...`, the commands of `python -m glow_tf`
(train, sample, encode, decode, reconstruct, interpolate, direction, manipulate, export, serve)."""
import sys

from glow_tf.cli.quiet import import_tensorflow_quietly


def main(argv=None):
    """Runs one command with TensorFlow's start-up lines quietened; returns the exit status."""
    import_tensorflow_quietly()
    from glow_tf.__main__ import main as run  # noqa: PLC0415 (imports TensorFlow: after the quiet import)

    return run(sys.argv[1:] if argv is None else argv, prog="glow-tf")


if __name__ == "__main__":
    sys.exit(main())
