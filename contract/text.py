"""Raw text → word ids → model input, written once.

The trainer encodes its training data with this module and the service encodes requests with it, so
training and serving cannot drift apart. Pure Python and NumPy: the service imports it without
TensorFlow.

The pipeline has two stages, both described by a `TextEncoding` stored in the model's config:

1. `word_ids(text)`: the Keras `datasets` encoding. Keras's `text_to_word_sequence` tokenisation, then
   each word's frequency rank + `index_from`, a leading `start_id`, and `oov_id` for words that are
   unknown or whose id is `>= num_words`.
2. `vectorize(sequences)`: id sequences → float32 rows of length `dim`. With `features="word_ids"`
   column j is word id j (the book's multi-hot); with `features="ngrams"` column j is the j-th n-gram
   (a tuple of word ids) of a vocabulary learned from the training set (the trainer's
   `trainer.vocabulary.fit_ngram_vocabulary`).

Both stages work on whole batches: `word_ids_batch` gives a batch's ids as one flat array
(`WordIds`), and `coordinates`/`vectorize` compute every row of a batch in a few NumPy calls, with
no Python loop per row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.endpoint import TextEndpoint
from contract.sparse import SparseRows

# keras.preprocessing.text.text_to_word_sequence's default filters: the tokenisation that produced the
# word indexes of keras.datasets.imdb and .reuters ("<br />" becomes the token "br").
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
# What `str.split()` splits on (`str.isspace`), in two parts: what `bytes.split()` splits on too,
# and the rest (ASCII information separators and non-ASCII spaces).
BYTES_WHITESPACE = " \t\n\r\x0b\x0c"
STR_ONLY_WHITESPACE = (
    "\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class WordIds:
    """A batch of word-id sequences as one flat array: sequence i is `ids[ends[i - 1]:ends[i]]`."""

    ids: np.ndarray  # integers
    ends: np.ndarray  # int64, one per sequence

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]]) -> WordIds:
        """The sequences as one flat array: of their own integer type where they are all NumPy
        integer arrays (25,000 reviews as int32 take 23 MB, not 47), else int64."""
        ends = np.cumsum(np.fromiter(map(len, sequences), np.int64, len(sequences)))
        if not len(sequences):
            return cls(np.empty(0, np.int64), ends)
        if all(isinstance(s, np.ndarray) and s.dtype.kind in "iu" for s in sequences):
            return cls(np.concatenate(sequences), ends)
        return cls(np.concatenate([np.asarray(s, np.int64) for s in sequences]), ends)

    def __len__(self) -> int:
        return self.ends.size

    def row_of_each(self) -> np.ndarray:
        """The sequence that each id belongs to."""
        lengths = self.ends.copy()
        lengths[1:] -= self.ends[:-1]
        return np.repeat(np.arange(len(self)), lengths)

    def capped(self, num_words: int, oov_id: int) -> WordIds:
        """keras.datasets' `num_words`: ids >= num_words become `oov_id`."""
        return WordIds(np.where(self.ids < num_words, self.ids, oov_id), self.ends)

    def rows(self, start: int, stop: int) -> WordIds:
        """Sequences start..stop-1 (the ids a view)."""
        stop = min(stop, len(self))
        first = self.ends[start - 1] if start > 0 else 0
        last = self.ends[stop - 1] if stop > start else first
        return WordIds(self.ids[first:last], self.ends[start:stop] - first)

    def split(self) -> list[np.ndarray]:
        """One array (a view) per sequence."""
        return np.split(self.ids, self.ends[:-1]) if len(self) else []


class TextEncoding(BaseModel):
    """How a model's input is computed from raw text; one per model version, in its config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["text"] = "text"
    lower: bool = True
    filters: str = KERAS_FILTERS
    vocabulary_file: str = Field(
        "vocabulary.json", description="Words by rank (and n-grams), JSON."
    )
    num_words: int = Field(gt=3, description="Word ids >= num_words become oov_id.")
    start_id: int = 1
    oov_id: int = 2
    index_from: int = 3
    features: Literal["word_ids", "ngrams"] = "word_ids"
    ngram_max: int = Field(1, ge=1, le=3)
    weighting: Literal["binary", "count", "log_count_idf"] = Field(
        "binary",
        description="binary: 1 where the feature occurs; count: occurrences; log_count_idf: "
        "log(1 + occurrences) × the feature's inverse document frequency in the training texts",
    )
    dim: int = Field(gt=0, description="Length of the model's input row: the number of columns.")
    form: Literal["dense", "sparse"] = Field(
        "dense",
        description="dense: the model takes rows of `dim` floats (input `encoded_text`); sparse: "
        "each row's non-zero columns as ids (INT64 [n, k], input `ids`), padded with the id `dim`, "
        "which contributes nothing, and their values (FP32 [n, k], input `weights`, 0 where "
        "padded) unless weighting is binary",
    )
    gathered_width: int | None = Field(
        None,
        ge=1,
        description="sparse form: the floats each id gathers from the graph's tables (their "
        "widths summed), what a padded id costs a call: the service sizes its calls by it "
        "(absent: 64)",
    )
    endpoint: TextEndpoint = Field(
        TextEndpoint(), description="How the typed endpoint (/api/{model}) names what it takes"
    )

    @model_validator(mode="after")
    def _dim_matches_features(self) -> TextEncoding:
        if self.features == "word_ids" and self.dim != self.num_words:
            raise ValueError("features='word_ids' needs dim == num_words")
        if self.features == "word_ids" and self.ngram_max != 1:
            raise ValueError("features='word_ids' is unigrams only; use features='ngrams'")
        return self


class TextEncoder:
    """Encodes raw texts or word-id sequences into model input rows, as one `TextEncoding` says."""

    def __init__(
        self,
        encoding: TextEncoding,
        words: Sequence[str],
        ngrams: Sequence[Sequence[int]] | FlatNGrams | None = None,
        idf: Sequence[float] | None = None,
    ):
        if (encoding.weighting == "log_count_idf") != (idf is not None):
            raise ValueError("idf weights go with weighting='log_count_idf', and only with it")
        if idf is not None and len(idf) != encoding.dim:
            raise ValueError(f"the encoding needs {encoding.dim} idf weights, got {len(idf)}")
        if ngrams is not None and not isinstance(ngrams, FlatNGrams):
            ngrams = FlatNGrams.of(ngrams)
        if encoding.features == "ngrams":
            if ngrams is None or len(ngrams) != encoding.dim:
                raise ValueError(f"the encoding needs {encoding.dim} n-grams, got {_len(ngrams)}")
            if ngrams.lengths.size and not (
                ngrams.lengths.min() >= 1 and ngrams.lengths.max() <= encoding.ngram_max
            ):
                raise ValueError(f"every n-gram must have 1..{encoding.ngram_max} word ids")
        self.encoding = encoding
        self.words = list(words)
        # The n-grams are kept as one int64 code each (`FlatNGrams.codes`), not as tuples: a served
        # vocabulary of 50,000 n-grams takes 0.4 MB instead of ~15.
        self._codes = ngrams.codes(encoding.num_words) if ngrams is not None else None
        self.idf = np.asarray(idf, dtype=np.float32) if idf is not None else None
        # Words ranked beyond `num_words` are left out: they encode as out of vocabulary.
        self._ids = {
            word: rank + encoding.index_from
            for rank, word in enumerate(self.words, 1)
            if rank + encoding.index_from < encoding.num_words
        }
        self._table = str.maketrans(encoding.filters, " " * len(encoding.filters))
        self._bytes: _ByteWords | None = None  # made by the first `word_ids_utf8`
        if self._codes is not None:
            codes = self._codes
            # a sort, not np.unique: NumPy 2.4's unique hashes, 50 × slower on 500,000 codes
            if (np.diff(np.sort(codes)) == 0).any():
                raise ValueError("the n-gram vocabulary has duplicates")
            self._unigram_columns = np.full(encoding.num_words, -1, np.int64)
            unigrams = codes < encoding.num_words  # a word's code is its id
            self._unigram_columns[codes[unigrams]] = np.flatnonzero(unigrams)
            self._longer = CodeTable(codes[~unigrams], np.flatnonzero(~unigrams))

    @property
    def ngrams(self) -> list[tuple[int, ...]] | None:
        """The n-gram of each input column (features="ngrams"), else None."""
        if self._codes is None:
            return None
        return [decode_code(int(code), self.encoding.num_words) for code in self._codes]

    @classmethod
    def from_word_index(
        cls,
        word_index: Mapping[str, int],
        encoding: TextEncoding,
        ngrams: Sequence[Sequence[int]] | None = None,
        idf: Sequence[float] | None = None,
    ) -> TextEncoder:
        """Builds an encoder from a Keras word index (word → frequency rank, 1 = most frequent)."""
        by_rank = sorted(word_index.items(), key=lambda item: item[1])
        kept = encoding.num_words - encoding.index_from - 1
        words = [word for word, _ in by_rank[:kept]]
        if [rank for _, rank in by_rank[:kept]] != list(range(1, len(words) + 1)):
            raise ValueError("the word index's ranks are not 1, 2, 3, …")
        return cls(encoding, words, ngrams, idf)

    @classmethod
    def load(cls, encoding: TextEncoding, folder: Path) -> TextEncoder:
        """Reads the vocabulary file that `save` wrote into a model folder (n-grams as one flat
        list of word ids and each n-gram's length, or, as earlier versions wrote them, a list
        per n-gram)."""
        vocabulary = json.loads((Path(folder) / encoding.vocabulary_file).read_text("utf-8"))
        ngrams = vocabulary.get("ngrams")
        if "ngram_ids" in vocabulary:
            ngrams = FlatNGrams(
                np.asarray(vocabulary["ngram_ids"], np.int64),
                np.asarray(vocabulary["ngram_lengths"], np.int64),
            )
        return cls(encoding, vocabulary["words"], ngrams, vocabulary.get("idf"))

    def save(self, folder: Path) -> Path:
        path = Path(folder) / self.encoding.vocabulary_file
        vocabulary: dict[str, list] = {"words": self.words}
        if self._codes is not None:
            flat = FlatNGrams.of_codes(self._codes, self.encoding.num_words)
            vocabulary["ngram_ids"] = flat.ids.tolist()
            vocabulary["ngram_lengths"] = flat.lengths.tolist()
        if self.idf is not None:
            vocabulary["idf"] = self.idf.tolist()
        path.write_text(json.dumps(vocabulary, ensure_ascii=False), "utf-8")
        return path

    def tokenize(self, text: str) -> list[str]:
        """Keras's `text_to_word_sequence` with this encoding's filters."""
        if self.encoding.lower:
            text = text.lower()
        return text.translate(self._table).split()

    def word_ids(self, text: str) -> list[int]:
        """The Keras `datasets` encoding of one text, start id included."""
        get, oov = self._ids.get, self.encoding.oov_id
        return [self.encoding.start_id, *[get(word, oov) for word in self.tokenize(text)]]

    def word_ids_batch(self, texts: Sequence[str]) -> WordIds:
        """`word_ids` of each text, as one flat int32 array. A text's words are looked up in C
        (`np.fromiter` over `map`), not a Python loop; one text at a time, so that a thread
        encoding a large batch lets others have the GIL between texts."""
        get, start, oov = self._ids.get, self.encoding.start_id, self.encoding.oov_id
        ids = [
            np.fromiter(chain((start,), map(get, words, repeat(oov))), np.int32, len(words) + 1)
            for words in map(self.tokenize, texts)
        ]
        ends = np.cumsum(np.fromiter(map(len, ids), np.int64, len(ids)))
        return WordIds(np.concatenate(ids) if ids else np.empty(0, np.int32), ends)

    def word_ids_utf8(self, texts: Sequence[bytes]) -> WordIds:
        """`word_ids_batch` of UTF-8 encoded texts, the same ids, for corpora: tokenised as bytes
        and looked up in NumPy, with no Python object per word (25,000 IMDB reviews: 2–3 x
        faster). Invalid UTF-8 raises UnicodeDecodeError, as decoding would."""
        if self._bytes is None:
            self._bytes = _ByteWords(self)
        if not self._bytes.usable:
            return self.word_ids_batch([text.decode("utf-8") for text in texts])
        parts, size, first = [], 0, 0
        for i, text in enumerate(texts):  # ~1 MB of text at a time: NumPy's arrays stay small
            size += len(text)
            if size >= _BYTES_CHUNK or i == len(texts) - 1:
                parts.append(self._bytes.word_ids(texts[first : i + 1]))
                size, first = 0, i + 1
        if not parts:
            return WordIds(np.empty(0, np.int32), np.empty(0, np.int64))
        offsets = np.cumsum([0, *(part.ids.size for part in parts[:-1])])
        return WordIds(
            np.concatenate([part.ids for part in parts]),
            np.concatenate(
                [part.ends + offset for part, offset in zip(parts, offsets, strict=True)]
            ),
        )

    def decode(self, ids: Iterable[int]) -> str:
        """Word ids back to text, skipping the reserved ids (as the book decodes a newswire)."""
        first = self.encoding.index_from + 1
        return " ".join(self.words[i - first] for i in ids if first <= i < first + len(self.words))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectorize(self.word_ids_batch(texts))

    def sparse_rows(self, sequences: Sequence[Sequence[int]] | WordIds) -> SparseRows:
        """`vectorize(sequences)` as its non-zero entries: what either form is made from."""
        rows, columns, values = self.coordinates(sequences)
        return SparseRows(rows, columns, values, (len(sequences), self.encoding.dim))

    def vectorize(self, sequences: Sequence[Sequence[int]] | WordIds) -> np.ndarray:
        """Word-id sequences → float32 array of shape (len(sequences), dim)."""
        out = np.zeros((len(sequences), self.encoding.dim), dtype=np.float32)
        self.fill(out, sequences)
        return out

    def coordinates(
        self, sequences: Sequence[Sequence[int]] | WordIds
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The non-zero entries of `vectorize(sequences)` as (rows, columns, values), row-major:
        a sparse form for training sets too large to hold dense. Every (row, column) hit gets
        one key, and `np.unique` counts them, a chunk of sequences at a time."""
        dim = self.encoding.dim
        keys, counts = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for rows, columns in self._hit_chunks(sequences):
            chunk_keys, chunk_counts = np.unique(rows * dim + columns, return_counts=True)
            keys.append(chunk_keys)
            counts.append(chunk_counts)
        rows, columns = np.divmod(np.concatenate(keys), dim)
        return rows, columns, self._weights(columns, np.concatenate(counts)).astype(np.float32)

    def fill(self, out: np.ndarray, sequences: Sequence[Sequence[int]] | WordIds) -> np.ndarray:
        """Writes `vectorize(sequences)` into `out`, a C-contiguous float32 array of at least
        len(sequences) × dim that is zero where it is written, and returns the flat positions it
        wrote: `out.reshape(-1)[positions] = 0` makes it zero again for the next batch (cheaper
        than a fresh array). Multi-hot rows are written without counting their hits."""
        flat = out.reshape(-1)
        if self.encoding.weighting != "binary":
            rows, columns, values = self.coordinates(sequences)
            positions = rows * self.encoding.dim + columns
            flat[positions] = values
            return positions
        written = [np.empty(0, np.int64)]
        for rows, columns in self._hit_chunks(sequences):
            # an entry hit twice is written twice, with 1 both times
            written.append(rows * self.encoding.dim + columns)
            flat[written[-1]] = 1.0
        return np.concatenate(written)

    def _hit_chunks(
        self, sequences: Sequence[Sequence[int]] | WordIds
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row, column) of each hit, for whole sequences of about `_IDS_CHUNK` ids at a time:
        NumPy's temporaries (a dozen arrays of the ids' size) stay a few MB however large the
        batch (41 newswires of 100,000 ids: 300 MB at once)."""
        if not isinstance(sequences, WordIds):
            sequences = WordIds.from_sequences(sequences)
        start = 0
        while start < len(sequences):
            first = sequences.ends[start - 1] if start else 0
            stop = int(np.searchsorted(sequences.ends, first + _IDS_CHUNK, "right"))
            stop = max(stop, start + 1)
            rows, columns = self._hits(*self._checked(sequences.rows(start, stop), start))
            yield rows + start, columns
            start = stop

    def _checked(self, sequences: WordIds, first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ids as int64, the row of each), after checking every id is within the vocabulary;
        `first_row`: the number of the batch's first sequence, for the message."""
        ids = sequences.ids.astype(np.int64, copy=False)
        rows = sequences.row_of_each()
        bad = (ids < 0) | (ids >= self.encoding.num_words)
        if bad.any():
            row = first_row + rows[bad.argmax()]
            raise ValueError(f"sequence {row}: word ids must be in [0, {self.encoding.num_words})")
        return ids, rows

    def _weights(self, columns: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if self.encoding.weighting == "binary":
            return np.ones(columns.size)
        if self.encoding.weighting == "count":
            return counts
        return np.log1p(counts) * self.idf[columns]

    def _hits(self, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of each input column that the flat ids hit, once per occurrence; an
        n-gram never spans two sequences."""
        if self._codes is None:
            return rows, ids
        columns = self._unigram_columns[ids]  # words: a table lookup
        found = columns >= 0
        hit_rows, hit_columns = [rows[found]], [columns[found]]
        num_words = self.encoding.num_words
        for n in range(2, self.encoding.ngram_max + 1):
            count = ids.size - n + 1
            if count <= 0:
                break
            columns = self._longer.find(sequence_codes(ids, n, num_words))
            found = (columns >= 0) & (rows[:count] == rows[n - 1 :])
            hit_rows.append(rows[:count][found])
            hit_columns.append(columns[found])
        return np.concatenate(hit_rows), np.concatenate(hit_columns)


_BYTES_CHUNK = 1 << 20
_IDS_CHUNK = 1 << 18
_KEY_BYTES = 16  # words up to this many bytes are looked up in NumPy, longer ones in a dict
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
_HASH = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


class _ByteWords:
    """`TextEncoder.word_ids_batch` for UTF-8 bytes, vectorised. A chunk of texts becomes one
    byte string: each text lower-cased (as `str.lower`, so non-ASCII texts are decoded for it),
    the filters and `str.split`'s other separators turned into spaces, the texts joined by
    spaces. Words are the runs of non-space bytes. Each word's key is its length and its first 16
    bytes as two integers, read in place from the byte string; keys are found through a
    `CodeTable` of their hashes and then compared whole with the vocabulary word's, so a hash
    collision can only cost a lookup, never give a wrong id. Longer words (rare) use a dict."""

    def __init__(self, encoder: TextEncoder):
        encoding = encoder.encoding
        self.lower, self.start, self.oov = encoding.lower, encoding.start_id, encoding.oov_id
        # The byte table only works for ASCII filters; otherwise `word_ids_utf8` decodes.
        self.usable = encoding.filters.isascii()
        # Every ASCII separator becomes a space, so that words are the runs of non-spaces.
        separators = encoding.filters + BYTES_WHITESPACE + STR_ONLY_WHITESPACE[:4]
        self.table = bytes.maketrans(separators.encode("ascii", "replace"), b" " * len(separators))
        self.spaces = re.compile("|".join(map(re.escape, STR_ONLY_WHITESPACE[4:])).encode("utf-8"))
        words = [word.encode("utf-8") for word in encoder._ids]
        ids = np.fromiter(encoder._ids.values(), np.int32, len(words))
        short = np.fromiter(map(len, words), np.int64, len(words)) <= _KEY_BYTES
        self.long_ids = {w: int(i) for w, i, s in zip(words, ids, short, strict=True) if not s}
        kept = [w for w, s in zip(words, short, strict=True) if s]
        self.ids = ids[short]
        buffer = b"".join(kept) + bytes(_KEY_BYTES)
        lengths = np.fromiter(map(len, kept), np.int64, len(kept))
        starts = np.cumsum(lengths) - lengths
        keys = _keys(buffer, starts, lengths)
        hashes = _hash(*keys)
        if np.unique(hashes).size != hashes.size:  # no vocabulary of this world does this
            self.usable = False
        self.found = CodeTable(hashes, np.arange(hashes.size))
        # One more entry, where words that are not found look: its length (-1) matches no word.
        self.none = hashes.size
        self.keys = [np.append(key, fill) for key, fill in zip(keys, (0, 0, -1), strict=True)]
        self.ids = np.append(self.ids, encoding.oov_id).astype(np.int32)

    def normalised(self, text: bytes) -> bytes:
        if text.isascii():  # ASCII's str.lower is bytes.lower
            return (text.lower() if self.lower else text).translate(self.table)
        decoded = text.decode("utf-8")
        text = (decoded.lower() if self.lower else decoded).encode("utf-8").translate(self.table)
        return self.spaces.sub(b" ", text) if self.spaces.search(text) else text

    def word_ids(self, texts: Sequence[bytes]) -> WordIds:
        normalised = [self.normalised(text) for text in texts]
        buffer = b" ".join(normalised) + b" " * (_KEY_BYTES + 1)
        text_starts = np.cumsum([0, *(len(t) + 1 for t in normalised[:-1])])
        in_word = np.frombuffer(buffer, np.uint8) != ord(" ")
        edges = np.diff(in_word.view(np.int8), prepend=np.int8(0))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = ends - starts
        lo, hi, lengths = keys = _keys(buffer, starts, lengths)
        at = self.found.find(_hash(*keys))
        at[at < 0] = self.none
        same = (self.keys[0][at] == lo) & (self.keys[1][at] == hi) & (self.keys[2][at] == lengths)
        ids = np.where(same, self.ids[at], self.oov).astype(np.int32)
        for i in np.flatnonzero(lengths > _KEY_BYTES):
            ids[i] = self.long_ids.get(buffer[starts[i] : ends[i]], self.oov)
        # Each text: its start id, then its words' ids.
        counts = np.diff(np.searchsorted(starts, text_starts), append=starts.size)
        text_ends = np.cumsum(counts + 1)
        out = np.empty(int(text_ends[-1]), np.int32)
        is_word = np.ones(out.size, bool)
        is_word[text_ends - counts - 1] = False
        out[~is_word] = self.start
        out[is_word] = ids
        return WordIds(out, text_ends.astype(np.int64))


def _keys(buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """(first 8 bytes, next 8 bytes, length) of each word of `buffer`, bytes past its end as 0;
    `buffer` must have 16 bytes after its last word's start."""
    eights = np.ndarray((len(buffer) - 7,), "<u8", buffer, 0, (1,))  # 8 bytes from each offset
    lo = eights[starts] & _MASKS[np.minimum(lengths, 8)]
    hi = eights[starts + 8] & _MASKS[np.clip(lengths - 8, 0, 8)]
    return lo, hi, lengths


def _hash(lo: np.ndarray, hi: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    mixed = lo * _HASH[0] ^ hi * _HASH[1] ^ lengths.astype(np.uint64) * _HASH[2]
    return (mixed >> np.uint64(1)).astype(np.int64)  # non-negative, as `CodeTable` wants


class CodeTable:
    """A hash table of int64 codes (n-grams) → columns, looked up for a whole array at once in a
    few NumPy calls: open addressing with linear probing, at most half full, so that most lookups
    end at their first slot. Several times faster than sorting a batch's codes and searching them
    in the sorted vocabulary, and the same answers; 1.5 MiB for IMDB v2's 36,354 n-grams (every
    worker holds it)."""

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 2**64 / the golden ratio
    _EMPTY = -1

    def __init__(self, codes: np.ndarray, columns: np.ndarray):
        bits = max(4, int(np.ceil(np.log2(max(1, codes.size) * 2))))
        self._shift, self._mask = np.uint64(64 - bits), (1 << bits) - 1
        self._keys = np.full(1 << bits, self._EMPTY, np.int64)
        self._columns = np.full(1 << bits, -1, np.int32)
        pending, slots = np.arange(codes.size), self._slots(codes)
        while pending.size:  # each round, the first code that wants a free slot takes it
            free = np.flatnonzero(self._keys[slots] == self._EMPTY)
            taken, first = np.unique(slots[free], return_index=True)
            winners = pending[free[first]]
            self._keys[taken], self._columns[taken] = codes[winners], columns[winners]
            placed = np.zeros(pending.size, bool)
            placed[free[first]] = True
            pending, slots = pending[~placed], (slots[~placed] + 1) & self._mask

    def _slots(self, codes: np.ndarray) -> np.ndarray:
        """Each code's first slot (codes are non-negative: their bits as uint64 are the same)."""
        hashed = codes.astype(np.int64, copy=False).view(np.uint64) * self._MULTIPLIER
        hashed >>= self._shift
        return hashed.view(np.int64)

    def find(self, codes: np.ndarray) -> np.ndarray:
        """The column of each code, -1 for codes not in the table."""
        slots = self._slots(codes)
        keys = self._keys[slots]
        hit = keys == codes
        found = np.full(codes.size, -1, np.int64)
        found[hit] = self._columns[slots[hit]]
        # The few codes whose first slot holds another code probe on.
        where = np.flatnonzero(~hit & (keys != self._EMPTY))
        slots = (slots[where] + 1) & self._mask
        while where.size:
            keys = self._keys[slots]
            hit = keys == codes[where]
            found[where[hit]] = self._columns[slots[hit]]
            going_on = ~hit & (keys != self._EMPTY)
            where, slots = where[going_on], (slots[going_on] + 1) & self._mask
        return found


def sequence_codes(ids: np.ndarray, n: int, num_words: int) -> np.ndarray:
    """One int64 code per n-gram of an id sequence: its ids as digits in base num_words, plus an
    offset per n so that the codes of different lengths never collide."""
    count = ids.size - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    codes = ids[:count].astype(np.int64)  # a copy, built on in place
    for k in range(1, n):
        codes *= num_words
        codes += ids[k : k + count]
    codes += _length_offset(n, num_words)
    return codes


@dataclass(frozen=True)
class FlatNGrams:
    """N-grams as one flat array of word ids and the length of each: how a vocabulary file keeps
    hundreds of thousands of them (JSON of a list per n-gram takes seconds to read, and a
    transient gigabyte of Python objects)."""

    ids: np.ndarray  # int64, the n-grams' word ids one after another
    lengths: np.ndarray  # int64, one per n-gram

    def __len__(self) -> int:
        return self.lengths.size

    @classmethod
    def of(cls, ngrams: Sequence[Sequence[int]]) -> FlatNGrams:
        lengths = np.fromiter(map(len, ngrams), dtype=np.int64, count=len(ngrams))
        ids = np.fromiter(chain.from_iterable(ngrams), dtype=np.int64, count=int(lengths.sum()))
        return cls(ids, lengths)

    @classmethod
    def of_codes(cls, codes: np.ndarray, num_words: int) -> FlatNGrams:
        """`codes`' n-grams (`sequence_codes`), vectorised per length."""
        lengths = np.ones(codes.size, np.int64)
        while (
            codes.size
            and (longer := codes >= _length_offset(int(lengths.max()) + 1, num_words)).any()
        ):
            lengths[longer] += 1
        ends = np.cumsum(lengths)
        ids = np.empty(int(lengths.sum()), np.int64)
        for n in np.unique(lengths):
            where = np.flatnonzero(lengths == n)
            rest = codes[where] - _length_offset(int(n), num_words)
            for k in range(int(n) - 1, -1, -1):  # the last word id is the lowest digit
                rest, ids[ends[where] - n + k] = np.divmod(rest, num_words)
        return cls(ids, lengths)

    def codes(self, num_words: int) -> np.ndarray:
        """`sequence_codes` of whole n-grams, vectorised per length (vocabularies are large)."""
        starts = np.cumsum(self.lengths) - self.lengths
        codes = np.empty(len(self), dtype=np.int64)
        for n in np.unique(self.lengths):
            where = np.flatnonzero(self.lengths == n)
            digits = self.ids[starts[where, None] + np.arange(n)]
            code = np.zeros(len(where), dtype=np.int64)
            for k in range(int(n)):
                code = code * num_words + digits[:, k]
            codes[where] = code + _length_offset(int(n), num_words)
        return codes


def _length_offset(n: int, num_words: int) -> int:
    return sum(num_words**k for k in range(1, n))


def decode_code(code: int, num_words: int) -> tuple[int, ...]:
    n = 1
    while code >= _length_offset(n + 1, num_words):
        n += 1
    code -= _length_offset(n, num_words)
    digits = []
    for _ in range(n):
        code, digit = divmod(code, num_words)
        digits.append(digit)
    return tuple(reversed(digits))


def _len(items: Sequence | None) -> int:
    return 0 if items is None else len(items)
