"""GlowConfig: the model's hyper-parameters, with the original's flag names (openai train.py `hps`)."""
import dataclasses
import json
import os

from glow_tf.io import atomic_write_text

PERMUTATIONS = {0: "reverse", 1: "shuffle", 2: "invconv"}  # openai --flow_permutation codes
COUPLINGS = {0: "additive", 1: "affine"}  # openai --flow_coupling codes


def _by_name_or_code(value, table, flag):
    """Maps an original integer code (or its name) to the name; anything else is a ValueError."""
    names = list(table.values())
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, (int,)) and not isinstance(value, bool) and value in table:
        return table[value]
    if isinstance(value, str) and value in names:
        return value
    allowed = ", ".join(f"{code} ({name})" for code, name in table.items())
    raise ValueError(f"{flag}={value!r}; expected one of {allowed}")


@dataclasses.dataclass(frozen=True)
class GlowConfig:
    """The architecture of one Glow model; everything else (weights, optimiser) lives elsewhere.

    Field names and defaults are the original `train.py` flags, so an original `hps` maps one to one.
    `flow_permutation` and `flow_coupling` accept the original's integer codes and are stored as names.
    """

    image_size: int = 32  # --image_size: H = W; must be divisible by 2**n_levels
    n_levels: int = 3  # --n_levels: levels (squeeze, `depth` steps, split except after the last)
    depth: int = 32  # --depth: flow steps per level (K)
    width: int = 512  # --width: hidden channels of the coupling network f
    flow_permutation: str = "invconv"  # --flow_permutation: 0 reverse, 1 shuffle, 2 invconv
    flow_coupling: str = "additive"  # --flow_coupling: 0 additive (the original default), 1 affine
    learntop: bool = False  # --learntop: learn the top prior's mean and log-std
    ycond: bool = False  # --ycond: condition the top prior on the one-hot class
    n_bits_x: int = 8  # --n_bits_x: bits per colour channel kept
    n_y: int = 1  # classes (the original derives it from the problem: 10 for cifar10)
    weight_y: float = 0.0  # --weight_y: weight of the classifier loss bits_y (needs ycond)
    lu: bool = False  # LU-decomposed 1x1 conv: the original's switched-off branch
    n_channels: int = 3  # channels of the input image (the original: always 3)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("flow_permutation", _by_name_or_code(self.flow_permutation, PERMUTATIONS, "flow_permutation"))
        set_("flow_coupling", _by_name_or_code(self.flow_coupling, COUPLINGS, "flow_coupling"))
        for name in ("image_size", "n_levels", "depth", "width", "n_bits_x", "n_y", "n_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}; expected a positive integer")
        if self.n_bits_x > 8:
            raise ValueError(f"n_bits_x={self.n_bits_x}; expected 1..8 (images are 8-bit)")
        if self.image_size % 2 ** self.n_levels:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by 2**n_levels={2 ** self.n_levels}: each of "
                f"the {self.n_levels} levels halves H and W; use fewer levels or an image size that is a "
                f"multiple of {2 ** self.n_levels}")
        if self.weight_y < 0:
            raise ValueError(f"weight_y={self.weight_y}; expected >= 0")
        if self.lu and self.flow_permutation != "invconv":
            raise ValueError(f"lu=True needs flow_permutation='invconv', got {self.flow_permutation!r}")
        set_("learntop", bool(self.learntop))
        set_("ycond", bool(self.ycond))
        set_("lu", bool(self.lu))
        set_("weight_y", float(self.weight_y))

    # --- derived values (the original wrote these into hps as side effects) ----------------------
    @property
    def n_bins(self):
        """2**n_bits_x, as a float like the original's `hps.n_bins = 2. ** hps.n_bits_x`."""
        return 2.0 ** self.n_bits_x

    @property
    def n_dims(self):
        """D = H*W*C, the sub-pixels of one image (bits/dim divides by it)."""
        return self.image_size * self.image_size * self.n_channels

    @property
    def level_shapes(self):
        """(h, w, c) of the flow at each level: one squeeze before level 0, one after each split."""
        shapes, c = [], 4 * self.n_channels
        for i in range(self.n_levels):
            s = self.image_size // 2 ** (i + 1)
            shapes.append((s, s, c))
            c *= 2
        return shapes

    @property
    def eps_shapes(self):
        """Shapes of the standardised latents, in the original's order: split levels, then the top."""
        *splits, top = self.level_shapes
        return [(h, w, c // 2) for h, w, c in splits] + [top]

    @property
    def top_shape(self):
        return self.level_shapes[-1]

    @property
    def has_classifier(self):
        """The original builds its classifier head only when ycond and weight_y > 0."""
        return self.ycond and self.weight_y > 0

    # --- serialisation ---------------------------------------------------------------------------
    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, strict=True):
        """Builds a config from a dict; with strict=False keys that are not fields are ignored
        (e.g. an original hps.json, which also holds n_bins, top_shape and the variable list)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if strict and unknown:
            raise ValueError(f"unknown GlowConfig fields {unknown}; expected a subset of {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path):
        """Writes the config as JSON, atomically (a crash never leaves a half-written file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no Glow config at {path!r}")
        with open(path) as f:
            return cls.from_dict(json.load(f))

