"""The data a model is trained and tested on: the book's datasets or the user's own files.

The book's: the files behind `keras.datasets`, read from a data directory with the same splits and
encodings as Keras, or through Keras's own loaders where no data directory is given and the
user asks for a download (`--download`; without it, `check_sources` says which files to put
where). A data
directory holds the files that Keras downloads (`reuters.npz`, `boston_housing.npz`, the word
indexes, and `imdb.npz`) or, for IMDB, the raw Large Movie Review Dataset (`aclImdb.tar.gz`) that
Keras's `imdb.npz` was made from; raw reviews are encoded with `contract.text` so that the result
is the Keras encoding. Every file is checked against its sha256 before use.

The user's own (`OwnFiles`): JSON Lines or CSV of `text,label` for the text models (labels by name,
encoded with the book's word index), CSV of the 13 named Boston columns and the price. Every row is
checked before any training; an error names the file, the line and the field.

NumPy only (Keras is imported only to download): `trainer evaluate` runs without TensorFlow.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.catalog import BOSTON_FEATURES, BOSTON_TARGET, IMDB_LABELS, REUTERS_LABELS
from contract.text import TextEncoder, TextEncoding, WordIds

DATA_DIR_ENV = "TRAINER_DATA_DIR"
CACHE_DIR_ENV = "TRAINER_CACHE_DIR"
# Bump when raw reviews encode differently: cache files of another format are then never read.
REVIEWS_CACHE_FORMAT = 1
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


log = logging.getLogger(__name__)


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
    """The data directory: the option, else $TRAINER_DATA_DIR, else None (then only `--download`
    lets Keras fetch the files; see `check_sources`)."""
    chosen = option if option is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "--data-dir" if option is not None else f"${DATA_DIR_ENV}"
        raise DataError(f"data directory {path} (from {source}) does not exist")
    return path


# The book's files each model reads from a data directory (IMDB: the raw reviews or Keras's npz).
BOOK_FILES = {
    "imdb": ("aclImdb.tar.gz (or imdb.npz)", "imdb_word_index.json"),
    "reuters": ("reuters.npz", "reuters_word_index.json"),
    "boston": ("boston_housing.npz",),
}


def files_needed(name: str, own: OwnFiles | None) -> tuple[str, ...]:
    """The book's files a model needs from the data directory: all of them for the book's dataset,
    only the word index for own texts (their words are encoded with it), none for own houses."""
    if own is None:
        return BOOK_FILES[name]
    return () if name == "boston" else (f"{name}_word_index.json",)


def check_sources(
    names: Sequence[str], data_dir: Path | None, own: OwnFiles | None, download: bool
) -> None:
    """Before anything trains or TensorFlow loads: without a data directory, the files each model
    needs and where to put them (Keras downloads them only when asked, with `download`)."""
    if data_dir is not None or download:
        return
    needed = {name: files_needed(name, own) for name in names}
    needed = {name: files for name, files in needed.items() if files}
    if needed:
        listed = "; ".join(f"{name}: {', '.join(files)}" for name, files in needed.items())
        raise DataError(
            f"no data directory: put the Keras dataset files ({listed}) in one folder and pass "
            f"--data-dir FOLDER or set ${DATA_DIR_ENV}=FOLDER, or add --download to let Keras "
            "download them (needs internet)"
        )


def checked_file(data_dir: Path, name: str) -> tuple[Path, str]:
    """The path of a dataset file and its sha256, after checking it against the known one."""
    path = data_dir / name
    if not path.is_file():
        raise DataError(
            f"{path} is missing: copy the Keras dataset file {name} into {data_dir}, or run without "
            f"--data-dir/${DATA_DIR_ENV} and with --download on a machine with internet to let "
            "Keras download it"
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


def _offset(sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Raw ranks → Keras ids: a start id, then rank + INDEX_FROM; views of one int32 array."""
    ranks = WordIds.from_sequences(sequences)
    starts = ranks.ends - np.diff(ranks.ends, prepend=0)
    ids = np.insert((ranks.ids + INDEX_FROM).astype(np.int32), starts, START_ID)
    return WordIds(ids, ranks.ends + np.arange(1, len(ranks) + 1)).split()


def load_reuters(data_dir: Path | None, test_only: bool = False) -> TextDataset:
    """`test_only`: the training newswires are left out (empty)."""
    if data_dir is None:
        return _keras_text("reuters")
    path, digest = checked_file(data_dir, "reuters.npz")
    index_path, index_digest = checked_file(data_dir, "reuters_word_index.json")
    with np.load(path, allow_pickle=True) as archive:
        xs, labels = keras_shuffle(np.random.RandomState(SPLIT_SEED), archive["x"], archive["y"])
    cut = int(len(xs) * (1 - TEST_SPLIT))
    if test_only:
        xs, labels, cut = xs[cut:], labels[cut:], 0
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


def load_imdb(data_dir: Path | None, test_only: bool = False) -> TextDataset:
    """IMDB from Keras's `imdb.npz` where the data directory has it, else from the raw reviews."""
    if data_dir is None:
        return _keras_text("imdb")
    if not (data_dir / "imdb.npz").exists():
        return _imdb_from_reviews(data_dir, test_only)
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
_TAR_BLOCK = 512


def read_reviews(
    archive_path: Path, splits: tuple[str, ...] = ("train", "test")
) -> dict[str, list[tuple[str, int]]]:
    """The raw reviews of `splits`, each as (text, label); neg (0) before pos (1), by file number."""
    return {
        split: [(text.decode("utf-8"), label) for text, label in reviews]
        for split, reviews in _review_files(archive_path, splits).items()
    }


def _review_files(
    archive_path: Path, splits: tuple[str, ...]
) -> dict[str, list[tuple[bytes, int]]]:
    """`read_reviews` with the texts as they are in the archive: UTF-8 bytes."""
    found: dict[str, list[tuple[bytes, int, int]]] = {split: [] for split in splits}
    for name, content in _tar_files(archive_path):
        match = _REVIEW.fullmatch(name)
        if not match:
            continue
        split, polarity, number, _rating = match.groups()
        if split not in found:
            if split > max(found) and all(found.values()):  # sorted: nothing wanted after
                break
            continue
        found[split].append((content, int(polarity == "pos"), int(number)))
    return {
        split: [(text, label) for text, label, _ in sorted(items, key=lambda r: (r[1], r[2]))]
        for split, items in found.items()
    }


def _tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each regular file of a gzipped ustar archive, in order: the headers read
    straight from the stream, 15 times faster than `tarfile` (which builds a TarInfo of each of the
    50,000 files), and the stream inflated a megabyte at a time (GzipFile's small reads cost more
    than the inflating). Other entry types (pax or GNU long names) are refused: the dataset's
    archive has none."""
    stream = _Chunks(_gunzipped(path))
    while len(header := stream.read(_TAR_BLOCK)) == _TAR_BLOCK and header.strip(b"\0"):
        kind, size = header[156:157], int(header[124:136].strip(b"\0 ") or b"0", 8)
        if kind not in (b"0", b"\0", b"5"):
            raise DataError(f"{path}: tar entry of type {kind!r} is not supported")
        prefix, name = (part.split(b"\0", 1)[0] for part in (header[345:500], header[:100]))
        content = stream.read(-(-size // _TAR_BLOCK) * _TAR_BLOCK)[:size]
        if kind != b"5":
            yield (prefix + b"/" + name if prefix else name).decode("utf-8"), content


def _gunzipped(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The content of a gzip file (of one or more members, each checked against its CRC), a piece
    at a time."""
    with open(path, "rb") as stream:
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while data := stream.read(chunk):
                while data:
                    yield inflate.decompress(data)
                    data = inflate.unused_data  # the next member's, if any
                    if data:
                        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as error:
            raise DataError(f"{path}: not a valid gzip file ({error})") from None
        if not inflate.eof:
            raise DataError(f"{path}: the gzip stream ends early (a truncated file)")


class _Chunks:
    """`read(size)` over an iterator of byte strings, as a file's `read`."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._buffer, self._at = chunks, b"", 0

    def read(self, size: int) -> bytes:
        if self._at + size > len(self._buffer):
            parts, have = [self._buffer[self._at :]], len(self._buffer) - self._at
            for chunk in self._chunks:
                parts.append(chunk)
                have += len(chunk)
                if have >= size:
                    break
            self._buffer, self._at = b"".join(parts), 0
        data = self._buffer[self._at : self._at + size]
        self._at += len(data)
        return data


def _imdb_from_reviews(data_dir: Path, test_only: bool = False) -> TextDataset:
    """The raw reviews, encoded as keras.datasets.imdb encodes them and shuffled as it shuffles.

    Keras's `imdb.npz` does not say in which order it stored the reviews, so the order before the
    Keras shuffle is: negative before positive, by file number. The test set is the same either way.
    `test_only` reads the test reviews alone and leaves them in that order (test scores do not
    depend on the order): what evaluating a version needs, in half the time.
    """
    archive_path, archive_digest = checked_file(data_dir, "aclImdb.tar.gz")
    index_path, index_digest = checked_file(data_dir, "imdb_word_index.json")
    word_index = json.loads(index_path.read_text("utf-8"))
    splits = ("test",) if test_only else ("train", "test")
    cached = {split: _reviews_cache(archive_digest, index_digest, split) for split in splits}
    found = {split: _read_cache(path) for split, path in cached.items()}
    missing = tuple(split for split in splits if found[split] is None)
    if missing:
        encoder = full_vocabulary_encoder(word_index)
        for split, reviews in _review_files(archive_path, missing).items():
            ids = encoder.word_ids_utf8([text for text, _ in reviews])  # word_ids_batch, faster
            labels = np.array([label for _, label in reviews], dtype=np.int64)
            found[split] = ids, labels
            _write_cache(cached[split], ids, labels)
    rng = np.random.RandomState(SPLIT_SEED)
    encoded = {"train": [[], np.empty(0, np.int64)]}
    for split in splits:
        word_ids, labels = found[split]
        ids = np.empty(len(word_ids), dtype=object)
        # views of one int32 array: 4 bytes per word id, not a list's ~36 (25,000 reviews: ~27 MB)
        ids[:] = word_ids.split()
        encoded[split] = [ids, labels] if test_only else keras_shuffle(rng, ids, labels)
    return TextDataset(
        name="imdb",
        x_train=list(encoded["train"][0]),
        y_train=encoded["train"][1],
        x_test=list(encoded["test"][0]),
        y_test=encoded["test"][1],
        word_index=word_index,
        files={archive_path.name: archive_digest, index_path.name: index_digest},
    )


def cache_dir() -> Path:
    """Where the encoded IMDB reviews are kept: $TRAINER_CACHE_DIR, else dlwp-serving in
    $XDG_CACHE_HOME or ~/.cache. Only a cache: safe to delete at any time."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlwp-serving"


def _reviews_cache(archive_digest: str, index_digest: str, split: str) -> Path:
    """A split's encoded reviews, named by what they are made from: the archive's and the word
    index's sha256, and the encoding's format (a changed input or format is never read stale)."""
    key = f"{archive_digest[:16]}-{index_digest[:16]}-v{REVIEWS_CACHE_FORMAT}"
    return cache_dir() / f"imdb-{split}-{key}.npz"


def _read_cache(path: Path) -> tuple[WordIds, np.ndarray] | None:
    """A cached split, or None where it is absent or unreadable (then it is encoded again)."""
    try:
        with np.load(path) as stored:
            return WordIds(stored["ids"], stored["ends"]), stored["labels"]
    except (OSError, KeyError, ValueError, EOFError):
        return None


def _write_cache(path: Path, ids: WordIds, labels: np.ndarray) -> None:
    """Written whole or not at all (a file of its own, then renamed); a cache that cannot be
    written only costs the next run its encoding."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, ids=ids.ids, ends=ids.ends, labels=labels)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        log.warning("could not cache the encoded reviews in %s: %s", path, error)


def full_vocabulary_encoder(word_index: dict[str, int]) -> TextEncoder:
    """Raw text → uncapped Keras word ids (every word of the index keeps its own id)."""
    size = len(word_index) + INDEX_FROM + 1
    return TextEncoder.from_word_index(word_index, TextEncoding(num_words=size, dim=size))


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


TEXT_LABELS = {"imdb": IMDB_LABELS, "reuters": REUTERS_LABELS}  # own files name these

# What training on the user's own files needs at the least, checked before TensorFlow loads
# (`check_trainable`).
MIN_ROWS_PER_CLASS = 10  # training rows of each label: as many as the book's rarest Reuters topic
MIN_CLASSES = 2
MIN_HOUSES = 20  # Boston's training rows: its K-fold validation needs a few in each of 4 folds
MIN_TEST_ROWS = 5
# A recipe's hold-out is at most this share of the training rows (the book's share for IMDB:
# 10,000 of 25,000 reviews), so that small files keep rows to fit on.
MAX_HOLD_OUT_SHARE = 0.4


def hold_out_size(wanted: int, rows: int) -> int:
    """The validation rows of a hold-out plan: the recipe's number, or `MAX_HOLD_OUT_SHARE` of the
    training rows where that is fewer (the book's datasets keep the recipe's number)."""
    return max(1, min(wanted, int(rows * MAX_HOLD_OUT_SHARE)))


def check_trainable(dataset: TextDataset | TabularDataset, own: OwnFiles | None) -> None:
    """The user's own files have enough rows to train and test on, before TensorFlow loads: the
    error names the file, what it has and what is needed, in one line. (The book's datasets
    have: their rarest label, a Reuters topic, has `MIN_ROWS_PER_CLASS` training rows.)"""
    if own is None or own.train is None:
        return
    train_source = own.train
    test_source = own.test or f"{own.train} (its held-out share {own.test_share:g})"
    if isinstance(dataset, TabularDataset):
        if len(dataset.y_train) < MIN_HOUSES:
            raise DataError(
                f"{train_source}: {len(dataset.y_train)} training rows, fewer than the "
                f"{MIN_HOUSES} Boston needs; add rows"
            )
    else:
        labels = TEXT_LABELS[dataset.name]
        counts = np.bincount(dataset.y_train, minlength=len(labels))
        present = {labels[i]: int(n) for i, n in enumerate(counts) if n}
        if len(present) < MIN_CLASSES:
            raise DataError(
                f"{train_source}: the training rows have {len(present)} label(s) "
                f"({', '.join(present) or 'none'}); a classifier needs at least {MIN_CLASSES}"
            )
        few = sorted((n, label) for label, n in present.items() if n < MIN_ROWS_PER_CLASS)
        if few:
            shown = ", ".join(f"{label!r} {n}" for n, label in few[:5])
            shown += f", and {len(few) - 5} more" if len(few) > 5 else ""
            raise DataError(
                f"{train_source}: too few training rows of {len(few)} label(s) ({shown}) of "
                f"{len(dataset.y_train)}; each label needs at least {MIN_ROWS_PER_CLASS}: "
                "add rows or leave the label out"
            )
    if len(dataset.y_test) < MIN_TEST_ROWS:
        raise DataError(
            f"{test_source}: {len(dataset.y_test)} test rows, fewer than the {MIN_TEST_ROWS} "
            "needed to judge a model; give a larger test file or test share"
        )


@dataclass(frozen=True)
class OwnFiles:
    """The user's files. Without a test file, the test set is the last `test_share` of the
    training rows after the Keras shuffle (seed 113), as keras.datasets splits Reuters and Boston."""

    train: Path | None = None
    test: Path | None = None
    test_share: float = TEST_SPLIT

    def __post_init__(self):
        if self.train is None and self.test is None:
            raise ValueError("own data needs a training file, a test file, or both")


def load(
    name: str, data_dir: Path | None, own: OwnFiles | None, test_only: bool = False
) -> TextDataset | TabularDataset:
    """A model's data: the book's dataset, or the user's files. `test_only`: for scoring, the test
    rows are enough (and IMDB's are read in half the time)."""
    if own is None:
        if name == "boston":
            return load_boston(data_dir)
        if name == "reuters":
            return load_reuters(data_dir, test_only)
        return load_imdb(data_dir, test_only)
    if test_only and own.test is not None:
        own = OwnFiles(test=own.test)
    if name == "boston":
        *split, files = _split(own, _read_houses)
        return TabularDataset(name, *split, files=files)
    word_index, files = _word_index(name, data_dir)
    encoder = full_vocabulary_encoder(word_index)
    x_train, y_train, x_test, y_test, own_files = _split(
        own, lambda path: _read_texts(path, TEXT_LABELS[name], encoder)
    )
    return TextDataset(
        name, list(x_train), y_train, list(x_test), y_test, word_index, {**files, **own_files}
    )


def _word_index(name: str, data_dir: Path | None) -> tuple[dict[str, int], dict[str, str]]:
    """The book's word index, which own texts are encoded with (the models' input vocabulary)."""
    file_name = f"{name}_word_index.json"
    if data_dir is None:
        with _keras_download(name):
            import keras

            return getattr(keras.datasets, name).get_word_index(), _keras_cache_hashes([file_name])
    path, digest = checked_file(data_dir, file_name)
    return json.loads(path.read_text("utf-8")), {file_name: digest}


def _split(own: OwnFiles, read) -> tuple:
    """(x_train, y_train, x_test, y_test, file → sha256): reads every given file (all its rows
    checked before anything trains) and makes the split."""
    read_files = {path: read(path) for path in (own.train, own.test) if path is not None}
    files = {str(path): sha256_of(path) for path in read_files}
    if own.test is not None:
        x_test, y_test = read_files[own.test]
        x_train, y_train = read_files.get(own.train, (x_test[:0], y_test[:0]))
    else:
        x, y = keras_shuffle(np.random.RandomState(SPLIT_SEED), *read_files[own.train])
        cut = int(len(x) * (1 - own.test_share))
        if not 0 < cut < len(x):
            raise DataError(
                f"{own.train}: {len(x)} rows leave no training or no test rows at a test share "
                f"of {own.test_share}; give a test file or another share"
            )
        x_train, y_train, x_test, y_test = x[:cut], y[:cut], x[cut:], y[cut:]
    return x_train, y_train, x_test, y_test, files


def _rows(path: Path, fields: list[str]) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each record of a JSON Lines or CSV file; a CSV's header must
    name `fields`."""
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    with open(path, encoding="utf-8", newline="") as stream:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(stream)
            missing = [name for name in fields if name not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}, line 1: the header lacks the columns {missing}")
            for record in reader:
                yield reader.line_num, record
            return
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}, line {number}: not JSON ({error.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}, line {number}: not a JSON object")
                yield number, record


def _field(path: Path, number: int, record: dict, name: str):
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{path}, line {number}, field '{name}': missing or empty")
    return value


def _read_texts(
    path: Path, labels: list[str], encoder: TextEncoder
) -> tuple[np.ndarray, np.ndarray]:
    """`text,label` rows → (word-id sequences, label indexes); labels are names of `labels`."""
    index = {label: i for i, label in enumerate(labels)}
    sequences, targets = [], []
    for number, record in _rows(path, ["text", "label"]):
        text = _field(path, number, record, "text")
        label = _field(path, number, record, "label")
        if not isinstance(text, str):
            raise DataError(f"{path}, line {number}, field 'text': not a string")
        if label not in index:
            raise DataError(
                f"{path}, line {number}, field 'label': {label!r} is not one of the model's "
                f"labels ({', '.join(labels)})"
            )
        sequences.append(encoder.word_ids(text))
        targets.append(index[label])
    if not sequences:
        raise DataError(f"{path} has no rows")
    x = np.empty(len(sequences), dtype=object)
    x[:] = sequences
    return x, np.array(targets, dtype=np.int64)


BOSTON_COLUMNS = [feature.name for feature in BOSTON_FEATURES]


def _read_houses(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CSV with the 13 named Boston columns and the price (any column order)."""
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: Boston data is a CSV file with a header")
    rows, prices = [], []
    for number, record in _rows(path, [*BOSTON_COLUMNS, BOSTON_TARGET.name]):
        values = []
        for feature in [*BOSTON_FEATURES, None]:
            column = feature.name if feature else BOSTON_TARGET.name
            text = _field(path, number, record, column)
            try:
                value = float(text)
            except ValueError:
                raise DataError(
                    f"{path}, line {number}, field '{column}': {text!r} is not a number"
                ) from None
            low = feature.minimum if feature else 0.0
            high = feature.maximum if feature else None
            if (
                not math.isfinite(value)
                or (low is not None and value < low)
                or (high is not None and value > high)
            ):
                raise DataError(
                    f"{path}, line {number}, field '{column}': {value} is outside "
                    f"[{low}, {high if high is not None else '∞'}]"
                )
            values.append(value)
        rows.append(values[:-1])
        prices.append(values[-1])
    if not rows:
        raise DataError(f"{path} has no rows")
    return np.array(rows, dtype=np.float32), np.array(prices, dtype=np.float32)
