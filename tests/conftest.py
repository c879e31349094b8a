"""Shared fixtures: the real data directory (found as the trainer finds it) and a tiny synthetic one
in the same file formats, for fast tests of the whole pipeline."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The real data's folder is for the real-data tests alone, through `real_data_dir`: taken out of
# the environment here, so that no other test (nor the trainer or service it starts) inherits it,
# and none depends on whether the folder exists beside the clone.
REAL_DATA_DIR = os.environ.pop("TRAINER_DATA_DIR", None)


@pytest.fixture(scope="session", autouse=True)
def trainer_cache_dir(tmp_path_factory) -> Path:
    """The trainer's cache of encoded reviews lives in the test session's own folder, never the
    user's (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("trainer-cache")
    os.environ["TRAINER_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """$TRAINER_DATA_DIR as pytest started, the trainer's own option; the test skips where it is
    not set or not a folder."""
    value = REAL_DATA_DIR
    if not value:
        pytest.skip(
            "real-data test: set TRAINER_DATA_DIR to the folder with the Keras dataset files "
            "(../shared/data on this project's machines)"
        )
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.skip(
            f"real-data test: TRAINER_DATA_DIR={value} is not a folder (no dataset files beside "
            "this clone; docs/trainer.md#data says which files to put there)"
        )
    return path


WORDS = ["the", "and", "a", "movie", "good", "great", "bad", "awful", "plot", "it's"]
REUTERS_WORDS = [f"w{i}" for i in range(1, 201)]


def _write_reviews(path: Path, rng: np.random.RandomState) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for split in ("train", "test"):
            for polarity, cue in (("neg", "bad awful"), ("pos", "good great")):
                for number in range(30):
                    filler = " ".join(rng.choice([*WORDS[:4], "plot"], size=8))
                    text = f"The {filler}, {cue}!<br /><br />It's {filler}."
                    payload = text.encode("utf-8")
                    rating = 8 if polarity == "pos" else 2
                    member = tarfile.TarInfo(f"aclImdb/{split}/{polarity}/{number}_{rating}.txt")
                    member.size = len(payload)
                    archive.addfile(member, io.BytesIO(payload))


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory) -> Path:
    """Small files in the Keras formats, with learnable signal."""
    folder = tmp_path_factory.mktemp("synthetic-data")
    rng = np.random.RandomState(0)
    (folder / "imdb_word_index.json").write_text(
        json.dumps({w: rank for rank, w in enumerate(WORDS, 1)})
    )
    _write_reviews(folder / "aclImdb.tar.gz", rng)

    topics = rng.randint(0, 46, size=400)
    newswires = np.empty(len(topics), dtype=object)
    newswires[:] = [
        [int(t) + 11, *rng.randint(1, 120, size=rng.randint(5, 30)), int(t) + 11] for t in topics
    ]
    np.savez(folder / "reuters.npz", x=newswires, y=topics)
    (folder / "reuters_word_index.json").write_text(
        json.dumps({w: rank for rank, w in enumerate(REUTERS_WORDS, 1)})
    )

    houses = rng.uniform(0.5, 10.0, size=(120, 13))
    prices = houses @ rng.uniform(0.5, 2.0, size=13) + rng.normal(0, 0.5, size=120)
    np.savez(folder / "boston_housing.npz", x=houses, y=prices)
    return folder


@pytest.fixture
def synthetic_data_dir(synthetic_files, monkeypatch) -> Path:
    """The synthetic files, with the trainer's checksum table patched to accept them."""
    from trainer import data

    for path in synthetic_files.iterdir():
        monkeypatch.setitem(data.SHA256, path.name, data.sha256_of(path))
    return synthetic_files
