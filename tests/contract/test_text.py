import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.text import (
    BYTES_WHITESPACE,
    STR_ONLY_WHITESPACE,
    CodeTable,
    TextEncoder,
    TextEncoding,
    WordIds,
)
from trainer.vocabulary import fit_ngram_vocabulary, smooth_idf

TRICKY_TEXTS = [
    "ΟΔΟΣ ΣΟΦΟΣ. Σ",  # final sigma: str.lower looks at the neighbours
    "İstanbul İİ",  # lower-cases to two code points
    "a\xa0b\u3000c\x1cd\u2028e\x85f",  # separators of str.split that bytes.split ignores
    "a-word-longer-than-sixteen-bytes, ünïcödé-wörd-öf-längth!",
    "The MOVIE<br /><br />was\tgreat\r\n",
    "",
]
WORD_INDEX = {"the": 1, "movie": 2, "was": 3, "great": 4, "not": 5, "it's": 6, "br": 7}


def encoder(num_words=10, ngrams=None, idf=None, **settings) -> TextEncoder:
    encoding = TextEncoding(num_words=num_words, dim=settings.pop("dim", num_words), **settings)
    return TextEncoder.from_word_index(WORD_INDEX, encoding, ngrams, idf)


def test_tokenize_is_keras_text_to_word_sequence():
    tokens = encoder().tokenize("The movie<br /><br />was GREAT... it's\tnot (really)!")
    assert tokens == ["the", "movie", "br", "br", "was", "great", "it's", "not", "really"]


def test_word_ids_follow_the_keras_datasets_encoding():
    # start id 1, rank + 3, unknown words and ids >= num_words become the OOV id 2
    ids = encoder(num_words=8).word_ids("The movie was great, really")
    assert ids == [1, 4, 5, 6, 7, 2]
    assert encoder(num_words=7).word_ids("great") == [1, 2]


def test_decode_skips_reserved_ids():
    text_encoder = encoder()
    assert text_encoder.decode(text_encoder.word_ids("The movie, really great")) == (
        "the movie great"
    )


def test_word_id_multi_hot_is_the_books_vectorize_sequences():
    sequences = [[1, 4, 4, 9], [1, 2], []]
    expected = np.zeros((3, 10), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        expected[row, sequence] = 1.0
    assert np.array_equal(encoder().vectorize(sequences), expected)


def test_count_weighting_counts_occurrences():
    row = encoder(weighting="count").vectorize([[1, 4, 4, 4]])[0]
    assert row[4] == 3.0
    assert row[1] == 1.0
    assert row.sum() == 4.0


def test_out_of_range_ids_are_rejected():
    with pytest.raises(ValueError, match=r"word ids must be in \[0, 10\)"):
        encoder().vectorize([[1, 10]])


def test_ngram_vocabulary_keeps_the_most_frequent_deterministically():
    sequences = [[1, 4, 5], [1, 4, 5], [1, 4, 6], [1, 7]]
    vocabulary = fit_ngram_vocabulary(sequences, num_words=10, ngram_max=2, size=4, min_df=2)
    # document frequencies: (1,)=4, (4,)=3, (1,4)=3, (5,)=2, (4,5)=2; ties broken by the n-gram
    assert vocabulary == [(1,), (4,), (1, 4), (5,)]
    assert fit_ngram_vocabulary(list(reversed(sequences)), 10, 2, 4, 2) == vocabulary


def test_ngram_features_hit_the_vocabulary_columns():
    ngrams = [(5, 6), (1,), (6,), (5,)]
    text_encoder = encoder(features="ngrams", ngram_max=2, dim=4, ngrams=ngrams)
    row = text_encoder.encode(["movie was great"])[0]  # ids 1, 5, 6, 7
    assert row.tolist() == [1.0, 1.0, 1.0, 1.0]
    row = text_encoder.encode(["was movie"])[0]  # ids 1, 6, 5: no (5, 6) bigram
    assert row.tolist() == [0.0, 1.0, 1.0, 1.0]


def test_vocabulary_round_trips_through_the_model_folder(tmp_path):
    ngrams = [(4, 5), (1,), (5, 6, 7)]
    original = encoder(features="ngrams", ngram_max=3, dim=3, ngrams=ngrams)
    original.save(tmp_path)
    loaded = TextEncoder.load(original.encoding, tmp_path)
    texts = ["the movie was great", "great great", ""]
    assert np.array_equal(loaded.encode(texts), original.encode(texts))
    assert loaded.words == original.words
    assert loaded.ngrams == ngrams
    saved = json.loads((tmp_path / "vocabulary.json").read_text())
    assert saved["ngram_ids"] == [4, 5, 1, 5, 6, 7]  # flat, fast to read
    assert saved["ngram_lengths"] == [2, 1, 3]


def test_a_vocabulary_of_one_list_per_ngram_is_still_read(tmp_path):
    """Versions saved before the flat form keep loading."""
    ngrams = [(4, 5), (1,), (5, 6, 7)]
    original = encoder(features="ngrams", ngram_max=3, dim=3, ngrams=ngrams)
    vocabulary = {"words": original.words, "ngrams": [list(g) for g in ngrams]}
    (tmp_path / "vocabulary.json").write_text(json.dumps(vocabulary))
    assert TextEncoder.load(original.encoding, tmp_path).ngrams == ngrams


def test_coordinates_are_the_sparse_form_of_vectorize():
    text_encoder = encoder(weighting="count")
    sequences = [[1, 4, 4], [], [1, 9]]
    rows, columns, values = text_encoder.coordinates(sequences)
    dense = np.zeros((3, 10), dtype=np.float32)
    dense[rows, columns] = values
    assert np.array_equal(dense, text_encoder.vectorize(sequences))


@pytest.mark.parametrize("weighting", ["binary", "count"])
def test_a_batch_is_encoded_alike_in_chunks_of_any_size(monkeypatch, weighting):
    """Large batches are encoded a chunk of sequences at a time: the same rows, columns and
    values as all at once, an n-gram never spanning two sequences, errors naming the sequence."""
    ngrams = [(1,), (4,), (1, 4), (4, 4), (9,)]
    text_encoder = encoder(
        features="ngrams", ngram_max=2, dim=5, ngrams=ngrams, weighting=weighting
    )
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 10, rng.integers(0, 12)).tolist() for _ in range(40)]
    whole = text_encoder.coordinates(sequences), text_encoder.vectorize(sequences)
    monkeypatch.setattr("contract.text._IDS_CHUNK", 5)
    (rows, columns, values), dense = (
        text_encoder.coordinates(sequences),
        text_encoder.vectorize(sequences),
    )
    for chunked, expected in zip(
        (rows, columns, values, dense), (*whole[0], whole[1]), strict=True
    ):
        assert np.array_equal(chunked, expected)
    with pytest.raises(ValueError, match="sequence 37: word ids"):
        text_encoder.vectorize([*sequences[:37], [1, 10]])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_words": 10, "dim": 12}, "dim == num_words"),
        ({"num_words": 10, "dim": 10, "ngram_max": 2}, "unigrams only"),
        ({"num_words": 2, "dim": 2}, "greater than 3"),
    ],
)
def test_inconsistent_encodings_are_rejected(settings, message):
    with pytest.raises(ValidationError, match=message):
        TextEncoding(**settings)


def test_ngram_encoder_needs_one_ngram_per_column():
    with pytest.raises(ValueError, match="needs 3 n-grams"):
        encoder(features="ngrams", ngram_max=2, dim=3, ngrams=[(1,), (4,)])


def test_log_count_idf_weights_occurrences_by_rarity(tmp_path):
    idf = np.linspace(1.0, 2.0, 10)
    text_encoder = encoder(weighting="log_count_idf", idf=idf)
    row = text_encoder.vectorize([[1, 4, 4, 4]])[0]
    assert row[4] == pytest.approx(np.log1p(3) * idf[4])
    assert row[1] == pytest.approx(np.log1p(1) * idf[1])
    text_encoder.save(tmp_path)
    loaded = TextEncoder.load(text_encoder.encoding, tmp_path)
    assert np.array_equal(loaded.vectorize([[1, 4, 4, 4]]), text_encoder.vectorize([[1, 4, 4, 4]]))
    with pytest.raises(ValueError, match="idf weights go with"):
        encoder(idf=idf)


def test_smooth_idf():
    assert smooth_idf(np.array([10, 1]), 10).tolist() == pytest.approx([1.0, 1 + np.log(11 / 2)])


def reference_rows(text_encoder: TextEncoder, sequences) -> np.ndarray:
    """`vectorize` by its definition, a row and an n-gram at a time, in plain Python."""
    encoding = text_encoder.encoding
    columns = {gram: j for j, gram in enumerate(text_encoder.ngrams or [])}
    out = np.zeros((len(sequences), encoding.dim), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        if text_encoder.ngrams is None:
            hits = Counter(sequence)
        else:
            grams = [
                tuple(sequence[i : i + n])
                for n in range(1, encoding.ngram_max + 1)
                for i in range(len(sequence) - n + 1)
            ]
            hits = Counter(columns[g] for g in grams if g in columns)
        for column, count in hits.items():
            if encoding.weighting == "binary":
                out[row, column] = 1.0
            elif encoding.weighting == "count":
                out[row, column] = count
            else:
                out[row, column] = np.log1p(count) * text_encoder.idf[column]
    return out


@st.composite
def encoders_and_batches(draw):
    num_words = draw(st.integers(4, 12))
    word_id = st.integers(0, num_words - 1)
    sequences = draw(st.lists(st.lists(word_id, max_size=12), max_size=6))
    weighting = draw(st.sampled_from(["binary", "count", "log_count_idf"]))
    settings = {"weighting": weighting}
    if draw(st.booleans()):
        ngram_max = draw(st.integers(1, 3))
        gram = st.lists(word_id, min_size=1, max_size=ngram_max).map(tuple)
        ngrams = draw(st.lists(gram, min_size=1, max_size=20, unique=True))
        settings.update(features="ngrams", ngram_max=ngram_max, dim=len(ngrams), ngrams=ngrams)
    dim = settings.get("dim", num_words)
    if weighting == "log_count_idf":
        settings["idf"] = draw(st.lists(st.floats(1, 5), min_size=dim, max_size=dim))
    return encoder(num_words, **settings), sequences


@settings(max_examples=300, deadline=None)
@given(encoders_and_batches())
def test_a_batch_is_vectorised_as_its_rows_are_one_by_one(case):
    """The whole batch in NumPy at once (n-grams never span two rows, counts per row) gives what
    the definition gives row by row."""
    text_encoder, sequences = case
    expected = reference_rows(text_encoder, sequences)
    np.testing.assert_allclose(text_encoder.vectorize(sequences), expected, rtol=1e-6)
    rows, columns, values = text_encoder.coordinates(WordIds.from_sequences(sequences))
    assert np.all(np.diff(rows * text_encoder.encoding.dim + columns) > 0)  # row-major, once
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, expected[rows, columns], rtol=1e-6)


def test_an_out_of_range_id_names_its_sequence():
    with pytest.raises(ValueError, match=r"sequence 2: word ids must be in \[0, 10\)"):
        encoder().coordinates([[1, 4], [], [1, 3, -1], [12]])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=())), max_size=5), st.booleans())
def test_a_batch_of_texts_gets_the_word_ids_of_each_text(texts, lower):
    """Any Unicode (surrogates, Python-only whitespace such as U+001C, final sigma) included."""
    words = [token for text in texts for token in text.lower().split()][:20]
    text_encoder = TextEncoder(TextEncoding(num_words=15, dim=15, lower=lower), words)
    batch = text_encoder.word_ids_batch(texts)
    assert [ids.tolist() for ids in batch.split()] == [text_encoder.word_ids(t) for t in texts]
    assert len(batch) == len(texts)


@settings(max_examples=200, deadline=None)
@given(
    st.sets(st.integers(0, 2**62), max_size=300),
    st.lists(st.integers(0, 2**62), max_size=50),
)
def test_the_code_table_finds_what_a_dict_finds(codes, others):
    """Whatever the collisions: every stored code gives its column, every other code -1."""
    codes = np.array(sorted(codes), dtype=np.int64)
    columns = np.arange(codes.size, dtype=np.int64)[::-1].copy()
    table = CodeTable(codes, columns)
    expected = dict(zip(codes.tolist(), columns.tolist(), strict=True))
    queries = np.array([*codes.tolist(), *others], dtype=np.int64)
    assert table.find(queries).tolist() == [expected.get(int(q), -1) for q in queries]


def test_fill_writes_vectorize_into_a_buffer_and_says_where():
    text_encoder = encoder(features="ngrams", ngram_max=2, dim=4, ngrams=[(4,), (4, 5), (5,), (1,)])
    batch = WordIds.from_sequences([[1, 4, 5, 4, 5], [], [5, 4]])
    buffer = np.zeros((3, 4), np.float32)
    written = text_encoder.fill(buffer, batch)
    assert np.array_equal(buffer, text_encoder.vectorize(batch))
    buffer.reshape(-1)[written] = 0
    assert not buffer.any()


def test_rows_of_word_ids_are_the_sequences_between():
    ids = WordIds.from_sequences([[1, 2], [], [3, 4, 5], [6]])
    assert [s.tolist() for s in ids.rows(1, 3).split()] == [[], [3, 4, 5]]
    assert [s.tolist() for s in ids.rows(3, 10).split()] == [[6]]
    assert len(ids.rows(4, 8)) == 0


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.text(st.characters(exclude_categories=("Cs",))) | st.sampled_from(TRICKY_TEXTS),
        max_size=6,
    ),
    st.booleans(),
)
def test_utf8_texts_get_the_word_ids_of_their_decoded_text(texts, lower):
    """The bytes path (NumPy lookups, words of up to 16 bytes in place, longer in a dict) gives
    `word_ids_batch`'s ids, whatever the Unicode: non-ASCII spaces, U+001C, final sigma, İ."""
    words = [token for text in texts for token in text.lower().split()][:30]
    words += ["a-word-longer-than-sixteen-bytes", "ünïcödé-wörd-öf-längth"]
    text_encoder = TextEncoder(TextEncoding(num_words=40, dim=40, lower=lower), words)
    expected = text_encoder.word_ids_batch(texts)
    batch = text_encoder.word_ids_utf8([text.encode("utf-8") for text in texts])
    assert batch.ids.tolist() == expected.ids.tolist()
    assert batch.ends.tolist() == expected.ends.tolist()


def test_the_whitespace_tables_are_what_str_split_splits_on():
    separators = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert sorted(BYTES_WHITESPACE + STR_ONLY_WHITESPACE) == sorted(separators)
    assert all(c.encode().isspace() for c in BYTES_WHITESPACE)
    assert not any(c.encode().isspace() for c in STR_ONLY_WHITESPACE)
