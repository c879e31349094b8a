import numpy as np
import pytest
from pydantic import ValidationError

from service.encoding import TextEncoder, TextEncoding, fit_ngram_vocabulary, smooth_idf

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


def test_coordinates_are_the_sparse_form_of_vectorize():
    text_encoder = encoder(weighting="count")
    sequences = [[1, 4, 4], [], [1, 9]]
    rows, columns, values = text_encoder.coordinates(sequences)
    dense = np.zeros((3, 10), dtype=np.float32)
    dense[rows, columns] = values
    assert np.array_equal(dense, text_encoder.vectorize(sequences))


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
