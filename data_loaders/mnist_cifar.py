"""MNIST and CIFAR-10 as uint8 [N, 32, 32, 3] arrays; ports the loading half of openai/glow
data_loaders/get_mnist_cifar.py.

With data_dir='' the arrays come from tf_keras.datasets.{mnist,cifar10}.load_data() (downloaded
once to ~/.keras/datasets, as the original's keras.datasets); otherwise from local files:
MNIST's IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or CIFAR-10's python batches
(data_batch_1..5, test_batch, in data_dir or data_dir/cifar-10-batches-py).
"""
import gzip
import os
import pickle

import numpy as np

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def mnist_to_rgb32(x):
    """[N, 28, 28] -> [N, 32, 32, 3]: openai's np.lib.pad(x, ((0,0),(2,2),(2,2)), 'minimum')
    (zeros on MNIST, whose borders are 0), then the grey channel tiled three times."""
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), "minimum")
    return np.tile(np.reshape(x, (-1, 32, 32, 1)), (1, 1, 1, 3))


def read_idx(path):
    """An IDX file (optionally gzipped) as a uint8 array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read IDX file {path!r}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path!r} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path!r} declares shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def _find(data_dir, name):
    for candidate in (name + ".gz", name):
        if os.path.isfile(os.path.join(data_dir, candidate)):
            return os.path.join(data_dir, candidate)
    raise FileNotFoundError(f"MNIST file {name}[.gz] not found in {data_dir!r}; expected "
                            f"{', '.join(f + '.gz' for f in MNIST_FILES)}")


def load_mnist(data_dir=""):
    """(x_train, y_train, x_test, y_test): uint8 [N, 32, 32, 3] images and int labels."""
    if not data_dir:
        import tf_keras
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.mnist.load_data()
    else:
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"MNIST data_dir {data_dir!r} does not exist")
        x_train, y_train, x_test, y_test = (read_idx(_find(data_dir, f)) for f in MNIST_FILES)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"MNIST {split} images have shape {x.shape[1:]}, expected (28, 28)")
        if len(x) != len(y):
            raise ValueError(f"MNIST {split} set has {len(x)} images but {len(y)} labels")
    return (mnist_to_rgb32(x_train), np.reshape(y_train, [-1]),
            mnist_to_rgb32(x_test), np.reshape(y_test, [-1]))


def read_cifar_batch(path):
    """One CIFAR-10 python batch: (uint8 [N, 32, 32, 3], labels [N]) (keras cifar.load_batch)."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(d[b"data"], np.uint8), np.asarray(d[b"labels"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError) as e:
        raise ValueError(f"{path!r} is not a CIFAR-10 python batch: {e!r}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path!r} holds data of shape {data.shape} and {len(labels)} labels; "
                         f"expected [N, 3072] (32x32 RGB) and N labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(data_dir=""):
    """(x_train, y_train, x_test, y_test): uint8 [N, 32, 32, 3] images and int labels."""
    if not data_dir:
        import tf_keras
        (x_train, y_train), (x_test, y_test) = tf_keras.datasets.cifar10.load_data()
        return x_train, np.reshape(y_train, [-1]), x_test, np.reshape(y_test, [-1])
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"CIFAR-10 data_dir {data_dir!r} does not exist")
    if os.path.isdir(os.path.join(data_dir, "cifar-10-batches-py")):
        data_dir = os.path.join(data_dir, "cifar-10-batches-py")
    missing = [f for f in CIFAR_FILES if not os.path.isfile(os.path.join(data_dir, f))]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 batches {', '.join(missing)} not found in {data_dir!r} "
                                f"(expected {', '.join(CIFAR_FILES)}, as in cifar-10-python.tar.gz)")
    train = [read_cifar_batch(os.path.join(data_dir, f)) for f in CIFAR_FILES[:5]]
    x_test, y_test = read_cifar_batch(os.path.join(data_dir, "test_batch"))
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            x_test, y_test)
