"""The dataset files behind `keras.datasets`, read from a data directory with the same splits and
encodings as Keras, or through Keras's own loaders where no data directory is given.

A data directory holds the files that Keras downloads (`reuters.npz`, `boston_housing.npz`, the word
indexes, and `imdb.npz`) or, for IMDB, the raw Large Movie Review Dataset (`aclImdb.tar.gz`) that
Keras's `imdb.npz` was made from; raw reviews are encoded with `service.encoding` so that the result
is the Keras encoding. Every file is checked against its sha256 before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.encoding import TextEncoder, TextEncoding

DATA_DIR_ENV = "TRAINER_DATA_DIR"
SPLIT_SEED = 113  # keras.datasets' default `seed`
TEST_SPLIT = 0.2  # keras.datasets' default `test_split` for Reuters and Boston
START_ID, OOV_ID, INDEX_FROM = 1, 2, 3

SHA256 = {
    "boston_housing.npz": "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
    "reuters.npz": "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
    "reuters_word_index.json": "9b56000edc4b34a32e89fd5a23b2605594682c74efcf7d8f4e2a5514b771e633",
    "imdb_word_index.json": "027313fe9a320280f3bf0fac5baf58c4a683cf39a7ed9c3d3d3912bde4284cf6",
    "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    "aclImdb.tar.gz": "70ac64fe615cd445e4c7c555c8589f4b76d137941fd1c8edb8c8b4f70794d08f",
}


class DataError(Exception):
    """A dataset file is missing or corrupt; the message says which and what to do."""


@dataclass(frozen=True)
class TextDataset:
    """Word-id sequences in the Keras encoding (start id 1, OOV id 2, rank + 3), uncapped."""

    name: str
    x_train: list[list[int]]
    y_train: np.ndarray
    x_test: list[list[int]]
    y_test: np.ndarray
    word_index: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)  # file name → sha256


@dataclass(frozen=True)
class TabularDataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    files: dict[str, str] = field(default_factory=dict)


def resolve_data_dir(option: str | os.PathLike | None) -> Path | None:
    """The data directory: the option, else $TRAINER_DATA_DIR, else None (Keras downloads)."""
    chosen = option if option is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "--data-dir" if option is not None else f"${DATA_DIR_ENV}"
        raise DataError(f"data directory {path} (from {source}) does not exist")
    return path


def checked_file(data_dir: Path, name: str) -> tuple[Path, str]:
    """The path of a dataset file and its sha256, after checking it against the known one."""
    path = data_dir / name
    if not path.is_file():
        raise DataError(
            f"{path} is missing: copy the Keras dataset file {name} into {data_dir}, or run without "
            f"--data-dir/${DATA_DIR_ENV} on a machine with internet to let Keras download it"
        )
    digest = sha256_of(path)
    if digest != SHA256[name]:
        raise DataError(
            f"{path} is corrupt: sha256 {digest}, expected {SHA256[name]}; replace it with the "
            "original Keras dataset file"
        )
    return path, digest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_shuffle(rng: np.random.RandomState, *arrays: np.ndarray) -> list[np.ndarray]:
    """Shuffles arrays of one length with one permutation, drawn as keras.datasets draws it."""
    indices = np.arange(len(arrays[0]))
    rng.shuffle(indices)
    return [array[indices] for array in arrays]


def cap_words(sequences: Sequence[Sequence[int]], num_words: int) -> list[list[int]]:
    """keras.datasets' `num_words`: ids >= num_words become the OOV id."""
    return [[i if i < num_words else OOV_ID for i in sequence] for sequence in sequences]


def _offset(sequences: Sequence[Sequence[int]]) -> list[list[int]]:
    """Raw ranks → Keras ids: a start id, then rank + INDEX_FROM."""
    return [[START_ID, *(int(rank) + INDEX_FROM for rank in sequence)] for sequence in sequences]


def load_reuters(data_dir: Path | None) -> TextDataset:
    if data_dir is None:
        return _keras_text("reuters")
    path, digest = checked_file(data_dir, "reuters.npz")
    index_path, index_digest = checked_file(data_dir, "reuters_word_index.json")
    with np.load(path, allow_pickle=True) as archive:
        xs, labels = keras_shuffle(np.random.RandomState(SPLIT_SEED), archive["x"], archive["y"])
    cut = int(len(xs) * (1 - TEST_SPLIT))
    xs = _offset(xs)
    return TextDataset(
        name="reuters",
        x_train=xs[:cut],
        y_train=labels[:cut].astype(np.int64),
        x_test=xs[cut:],
        y_test=labels[cut:].astype(np.int64),
        word_index=json.loads(index_path.read_text("utf-8")),
        files={path.name: digest, index_path.name: index_digest},
    )


def load_boston(data_dir: Path | None) -> TabularDataset:
    if data_dir is None:
        with _keras_download("boston_housing"):
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.boston_housing.load_data()
        files = _keras_cache_hashes(["boston_housing.npz"])
    else:
        path, digest = checked_file(data_dir, "boston_housing.npz")
        with np.load(path, allow_pickle=True) as archive:
            x, y = keras_shuffle(np.random.RandomState(SPLIT_SEED), archive["x"], archive["y"])
        cut = int(len(x) * (1 - TEST_SPLIT))
        x_train, y_train, x_test, y_test = x[:cut], y[:cut], x[cut:], y[cut:]
        files = {path.name: digest}
    return TabularDataset(
        name="boston",
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.float32),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.float32),
        files=files,
    )


def load_imdb(data_dir: Path | None) -> TextDataset:
    """IMDB from Keras's `imdb.npz` where the data directory has it, else from the raw reviews."""
    if data_dir is None:
        return _keras_text("imdb")
    if not (data_dir / "imdb.npz").exists():
        return _imdb_from_reviews(data_dir)
    path, digest = checked_file(data_dir, "imdb.npz")
    index_path, index_digest = checked_file(data_dir, "imdb_word_index.json")
    with np.load(path, allow_pickle=True) as archive:
        rng = np.random.RandomState(SPLIT_SEED)
        x_train, y_train = keras_shuffle(rng, archive["x_train"], archive["y_train"])
        x_test, y_test = keras_shuffle(rng, archive["x_test"], archive["y_test"])
    return TextDataset(
        name="imdb",
        x_train=_offset(x_train),
        y_train=y_train.astype(np.int64),
        x_test=_offset(x_test),
        y_test=y_test.astype(np.int64),
        word_index=json.loads(index_path.read_text("utf-8")),
        files={path.name: digest, index_path.name: index_digest},
    )


_REVIEW = re.compile(r"aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt")


def read_reviews(archive_path: Path) -> dict[str, list[tuple[str, int]]]:
    """The raw reviews by split, each as (text, label); neg (0) before pos (1), by file number."""
    found: dict[str, list[tuple[str, int, int]]] = {"train": [], "test": []}
    with tarfile.open(archive_path) as archive:
        for member in archive:
            match = _REVIEW.fullmatch(member.name)
            if match and member.isfile():
                split, polarity, number, _rating = match.groups()
                text = archive.extractfile(member).read().decode("utf-8")
                found[split].append((text, int(polarity == "pos"), int(number)))
    return {
        split: [(text, label) for text, label, _ in sorted(items, key=lambda r: (r[1], r[2]))]
        for split, items in found.items()
    }


def _imdb_from_reviews(data_dir: Path) -> TextDataset:
    """The raw reviews, encoded as keras.datasets.imdb encodes them and shuffled as it shuffles.

    Keras's `imdb.npz` does not say in which order it stored the reviews, so the order before the
    Keras shuffle is: negative before positive, by file number. The test set is the same either way.
    """
    archive_path, archive_digest = checked_file(data_dir, "aclImdb.tar.gz")
    index_path, index_digest = checked_file(data_dir, "imdb_word_index.json")
    word_index = json.loads(index_path.read_text("utf-8"))
    full_vocabulary = len(word_index) + INDEX_FROM + 1
    encoder = TextEncoder.from_word_index(
        word_index, TextEncoding(num_words=full_vocabulary, dim=full_vocabulary)
    )
    reviews = read_reviews(archive_path)
    rng = np.random.RandomState(SPLIT_SEED)
    splits = {}
    for split in ("train", "test"):
        ids = np.empty(len(reviews[split]), dtype=object)
        ids[:] = [encoder.word_ids(text) for text, _ in reviews[split]]
        labels = np.array([label for _, label in reviews[split]], dtype=np.int64)
        splits[split] = keras_shuffle(rng, ids, labels)
    return TextDataset(
        name="imdb",
        x_train=list(splits["train"][0]),
        y_train=splits["train"][1],
        x_test=list(splits["test"][0]),
        y_test=splits["test"][1],
        word_index=word_index,
        files={archive_path.name: archive_digest, index_path.name: index_digest},
    )


def _keras_text(name: str) -> TextDataset:
    """Keras's own loader (downloads on first use), uncapped, with its word index."""
    with _keras_download(name):
        import keras

        module = getattr(keras.datasets, name)
        (x_train, y_train), (x_test, y_test) = module.load_data()
        word_index = module.get_word_index()
    return TextDataset(
        name=name,
        x_train=[list(map(int, x)) for x in x_train],
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=[list(map(int, x)) for x in x_test],
        y_test=np.asarray(y_test, dtype=np.int64),
        word_index=word_index,
        files=_keras_cache_hashes([f"{name}.npz", f"{name}_word_index.json"]),
    )


@contextmanager
def _keras_download(name: str):
    try:
        yield
    except Exception as error:  # Keras raises bare Exceptions for failed downloads
        raise DataError(
            f"Keras could not load the {name} dataset ({error}); without internet, pass --data-dir "
            f"or set ${DATA_DIR_ENV} to a folder with the dataset files"
        ) from error


def _keras_cache_hashes(names: list[str]) -> dict[str, str]:
    """sha256 of files in Keras's download cache, for the provenance in a model's config."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return {name: sha256_of(cache / name) for name in names if (cache / name).is_file()}
