"""The n-gram vocabulary and its weights, learned from the training texts' word ids: the trainer's
half of the text encoding (`contract.text` encodes with what this learns). NumPy only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from contract.text import decode_code, sequence_codes


def fit_ngram_vocabulary(
    sequences: Iterable[Sequence[int]], num_words: int, ngram_max: int, size: int, min_df: int = 2
) -> list[tuple[int, ...]]:
    """The `size` n-grams (1..ngram_max word ids) found in the most sequences, at least `min_df`.

    Ties are broken by the n-gram itself, so the vocabulary is a pure function of the sequences.
    """
    per_sequence = [
        np.unique(
            np.concatenate(
                [
                    sequence_codes(np.asarray(s, np.int64), n, num_words)
                    for n in range(1, ngram_max + 1)
                ]
            )
        )
        for s in sequences
    ]
    codes, document_frequency = np.unique(np.concatenate(per_sequence), return_counts=True)
    keep = document_frequency >= min_df
    codes, document_frequency = codes[keep], document_frequency[keep]
    # Sort by descending frequency, then ascending code: deterministic.
    chosen = codes[np.lexsort((codes, -document_frequency))[:size]]
    return [decode_code(int(code), num_words) for code in chosen]


def smooth_idf(document_frequency: np.ndarray, documents: int) -> np.ndarray:
    """ln((1 + documents) / (1 + df)) + 1: rare features weigh more, none weighs zero."""
    return np.log((1 + documents) / (1 + np.asarray(document_frequency, dtype=np.float64))) + 1
