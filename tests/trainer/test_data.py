import gzip
import json
import shutil
import tarfile

import numpy as np
import pytest

from trainer import data


def test_missing_file_names_the_file_and_what_to_do(tmp_path):
    with pytest.raises(
        data.DataError, match=r"reuters\.npz is missing: copy the Keras dataset file"
    ):
        data.load_reuters(tmp_path)


def test_corrupt_file_is_refused_with_both_checksums(synthetic_data_dir, tmp_path):
    copy = tmp_path / "boston_housing.npz"
    shutil.copy(synthetic_data_dir / "boston_housing.npz", copy)
    with open(copy, "ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(
        data.DataError, match=r"boston_housing\.npz is corrupt: sha256 [0-9a-f]{64}"
    ):
        data.load_boston(tmp_path)


def test_data_dir_comes_from_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.resolve_data_dir(None) == tmp_path
    assert data.resolve_data_dir(tmp_path / ".") == tmp_path
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.resolve_data_dir(None) is None
    with pytest.raises(data.DataError, match="from --data-dir"):
        data.resolve_data_dir(tmp_path / "absent")


def test_reuters_split_and_encoding_follow_keras(synthetic_data_dir):
    loaded = data.load_reuters(synthetic_data_dir)
    with np.load(synthetic_data_dir / "reuters.npz", allow_pickle=True) as archive:
        raw_x, raw_y = archive["x"], archive["y"]
    order = np.arange(len(raw_y))
    np.random.RandomState(113).shuffle(order)
    assert len(loaded.x_train) == int(len(raw_y) * 0.8)
    assert loaded.x_train[0].tolist() == [1, *(rank + 3 for rank in raw_x[order[0]])]
    assert loaded.y_test.tolist() == raw_y[order[len(loaded.x_train) :]].tolist()
    assert set(loaded.files) == {"reuters.npz", "reuters_word_index.json"}


def test_raw_reviews_are_encoded_with_the_word_index(synthetic_data_dir):
    loaded = data.load_imdb(synthetic_data_dir)
    assert len(loaded.x_train) == len(loaded.x_test) == 60
    assert sorted(set(loaded.y_train.tolist())) == [0, 1]
    index = json.loads((synthetic_data_dir / "imdb_word_index.json").read_text())
    by_id = {rank + 3: word for word, rank in index.items()}
    for ids, label in zip(loaded.x_train, loaded.y_train, strict=True):
        words = [by_id.get(i, "<oov>") for i in ids[1:]]
        assert ids[0] == 1
        assert words[0] == "the"  # "The" lower-cased
        assert "br" not in words  # not in this word index: "<br />" gives "br", an OOV id
        assert 2 in ids
        assert {"good", "great"} <= set(words) if label else {"bad", "awful"} <= set(words)


def test_reuters_test_rows_alone_are_the_test_rows(synthetic_data_dir):
    whole = data.load_reuters(synthetic_data_dir)
    test_only = data.load_reuters(synthetic_data_dir, test_only=True)
    assert test_only.x_train == []
    assert test_only.y_train.size == 0
    assert [x.tolist() for x in test_only.x_test] == [x.tolist() for x in whole.x_test]
    assert test_only.y_test.tolist() == whole.y_test.tolist()


def test_the_archive_is_read_as_gzip_reads_it(synthetic_data_dir, tmp_path):
    """Inflated a megabyte at a time, members one after another; a truncated file is refused."""
    archive = (synthetic_data_dir / "aclImdb.tar.gz").read_bytes()
    assert b"".join(data._gunzipped(synthetic_data_dir / "aclImdb.tar.gz", chunk=1000)) == (
        gzip.decompress(archive)
    )
    two_members = tmp_path / "two.gz"
    two_members.write_bytes(gzip.compress(b"first ") + gzip.compress(b"second"))
    assert b"".join(data._gunzipped(two_members, chunk=7)) == b"first second"
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(archive[: len(archive) // 2])
    with pytest.raises(data.DataError, match="ends early"):
        b"".join(data._gunzipped(truncated))
    names = [name for name, _ in data._tar_files(synthetic_data_dir / "aclImdb.tar.gz")]
    with tarfile.open(synthetic_data_dir / "aclImdb.tar.gz") as reference:
        assert names == [m.name for m in reference.getmembers() if m.isfile()]


def test_cap_words_is_keras_num_words():
    assert data.cap_words([[1, 5, 10, 11]], num_words=10) == [[1, 5, 2, 2]]


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["reuters", "boston_housing"])
def test_splits_equal_keras_own_loaders(real_data_dir, name, tmp_path, monkeypatch):
    import keras
    from keras.src.backend import config

    # Keras finds the file in its download cache, checks its own hash, and downloads nothing.
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / f"{name}.npz").symlink_to(real_data_dir / f"{name}.npz")
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    if name == "reuters":
        (x_train, y_train), (x_test, y_test) = keras.datasets.reuters.load_data(num_words=10_000)
        ours = data.load_reuters(real_data_dir)
        assert data.cap_words(ours.x_train, 10_000) == [list(x) for x in x_train]
        assert data.cap_words(ours.x_test, 10_000) == [list(x) for x in x_test]
    else:
        (x_train, y_train), (x_test, y_test) = keras.datasets.boston_housing.load_data()
        ours = data.load_boston(real_data_dir)
        assert np.allclose(ours.x_train, x_train)
        assert np.allclose(ours.x_test, x_test)
    assert np.allclose(ours.y_train, y_train)
    assert np.allclose(ours.y_test, y_test)


@pytest.mark.real_data
def test_real_imdb_has_the_official_split_and_the_known_first_review(real_data_dir):
    loaded = data.load_imdb(real_data_dir)
    assert len(loaded.x_train) == len(loaded.x_test) == 25_000
    assert loaded.y_train.mean() == loaded.y_test.mean() == 0.5
    by_id = {rank + 3: word for word, rank in loaded.word_index.items()}
    reviews = [" ".join(by_id.get(i, "?") for i in ids[1:]) for ids in loaded.x_test]
    known = "please give this one a miss br br kristy swanson and the rest of the cast"
    assert any(review.startswith(known) for review in reviews)


def test_reuters_labels_are_keras_label_names():
    import keras

    from contract.catalog import REUTERS_LABELS

    assert tuple(REUTERS_LABELS) == tuple(keras.datasets.reuters.get_label_names())


def test_keras_imdb_npz_is_preferred_to_the_raw_reviews(synthetic_data_dir, tmp_path, monkeypatch):
    for name in ("imdb_word_index.json", "aclImdb.tar.gz"):
        shutil.copy(synthetic_data_dir / name, tmp_path / name)
    x = np.empty(4, dtype=object)
    x[:] = [[5, 6], [7], [8, 9, 10], [4]]
    np.savez(tmp_path / "imdb.npz", x_train=x, y_train=np.array([0, 1, 0, 1]),
             x_test=x[::-1], y_test=np.array([1, 0, 1, 0]))  # fmt: skip
    monkeypatch.setitem(data.SHA256, "imdb.npz", data.sha256_of(tmp_path / "imdb.npz"))
    loaded = data.load_imdb(tmp_path)
    assert set(loaded.files) == {"imdb.npz", "imdb_word_index.json"}
    rng = np.random.RandomState(113)
    train_order = np.arange(4)
    rng.shuffle(train_order)
    assert [ids.tolist() for ids in loaded.x_train] == [
        [1, *(w + 3 for w in x[i])] for i in train_order
    ]
    assert loaded.y_train.tolist() == [[0, 1, 0, 1][i] for i in train_order]


def test_encoded_reviews_are_cached_under_the_archives_checksum(
    synthetic_data_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRAINER_CACHE_DIR", str(tmp_path / "cache"))
    first = data.load_imdb(synthetic_data_dir)
    archive_digest = data.sha256_of(synthetic_data_dir / "aclImdb.tar.gz")
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2
    assert all(archive_digest[:16] in name for name in cached)

    def unread(*args):
        raise AssertionError("the reviews were read again")

    with monkeypatch.context() as patched:
        patched.setattr(data, "_review_files", unread)
        again = data.load_imdb(synthetic_data_dir)
        test_only = data.load_imdb(synthetic_data_dir, test_only=True)
    for ours, theirs in [(first.x_train, again.x_train), (first.x_test, again.x_test)]:
        assert [ids.tolist() for ids in ours] == [ids.tolist() for ids in theirs]
    assert first.y_train.tolist() == again.y_train.tolist()
    assert sorted(map(tuple, test_only.x_test)) == sorted(map(tuple, first.x_test))

    # A damaged cache file is not trusted: the reviews are encoded again, and it is rewritten.
    damaged = tmp_path / "cache" / cached[0]
    damaged.write_bytes(b"not a cache")
    assert [ids.tolist() for ids in data.load_imdb(synthetic_data_dir).x_test] == [
        ids.tolist() for ids in first.x_test
    ]
    assert damaged.read_bytes() != b"not a cache"


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINER_CACHE_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("TRAINER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "dlwp-serving"
