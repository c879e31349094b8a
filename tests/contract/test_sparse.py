"""`SparseRows` in the sparse input form (padded ids and values) and back, merged, and the inputs a
text model of each form takes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.config import ModelConfig, TensorSpec, text_inputs
from contract.sparse import SparseRows
from contract.text import TextEncoding


def rows_of(dense: np.ndarray) -> SparseRows:
    rows, columns = np.nonzero(dense)
    return SparseRows(rows, columns, dense[rows, columns].astype(np.float32), dense.shape)


def test_padded_rows_are_each_rows_entries_then_the_pad_id():
    rows = rows_of(np.array([[0, 2, 0, 5], [0, 0, 0, 0], [7, 0, 0, 0]], np.float32))
    ids, values = rows.padded()
    np.testing.assert_array_equal(ids, [[1, 3], [4, 4], [0, 4]])
    np.testing.assert_array_equal(values, [[2, 5], [0, 0], [7, 0]])
    assert ids.dtype == np.int64
    assert values.dtype == np.float32
    wide_ids, wide_values = rows.padded(width=5)
    assert wide_ids.shape == (3, 5)
    assert (wide_ids[:, 2:] == 4).all()
    assert (wide_values[:, 2:] == 0).all()


def test_rows_without_entries_are_one_pad_wide():
    ids, values = SparseRows(
        np.empty(0, int), np.empty(0, int), np.empty(0, np.float32), (2, 9)
    ).padded()
    np.testing.assert_array_equal(ids, [[9], [9]])
    np.testing.assert_array_equal(values, [[0], [0]])


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 11), st.floats(0.5, 4, width=32)), max_size=6),
        min_size=1,
        max_size=5,
    )
)
def test_padded_and_back_in_any_order_and_merged_are_the_same_rows(entries):
    dense = np.zeros((len(entries), 12), np.float32)
    for row, pairs in enumerate(entries):
        for column, value in pairs:
            dense[row, column] = value
    rows = rows_of(dense)
    ids, values = rows.padded()
    np.testing.assert_array_equal(SparseRows.from_padded(ids, values, 12).dense(), dense)
    backwards = np.arange(len(dense))[::-1]
    part_ids, part_values = rows.padded(rows=backwards)
    np.testing.assert_array_equal(
        SparseRows.from_padded(part_ids, part_values, 12).dense(), dense[backwards]
    )
    merged = SparseRows.concatenate([rows, rows.take(0, 1), rows])
    np.testing.assert_array_equal(merged.dense(), np.concatenate([dense, dense[:1], dense]))


def test_binary_ids_come_back_with_value_one():
    ids = np.array([[3, 0, 5], [5, 5, 5]])
    np.testing.assert_array_equal(
        SparseRows.from_padded(ids, None, 5).dense(), [[1, 0, 0, 1, 0], [0] * 5]
    )


def encoding(**changes) -> TextEncoding:
    return TextEncoding(num_words=100, features="ngrams", ngram_max=2, dim=40, **changes)


def test_each_form_says_its_inputs():
    assert text_inputs(encoding()) == [
        TensorSpec(name="encoded_text", datatype="FP32", shape=[-1, 40])
    ]
    assert text_inputs(encoding(form="sparse")) == [
        TensorSpec(name="ids", datatype="INT64", shape=[-1, -1])
    ]
    assert [s.name for s in text_inputs(encoding(form="sparse", weighting="count"))] == [
        "ids",
        "weights",
    ]


def test_a_sparse_config_must_name_its_forms_inputs():
    form = encoding(form="sparse", weighting="count")
    base = {
        "name": "t",
        "version": 1,
        "encoding": form,
        "outputs": [TensorSpec(name="p", datatype="FP32", shape=[-1, 1])],
    }
    ModelConfig(**base, inputs=text_inputs(form))
    with pytest.raises(ValidationError, match="a sparse text model takes the inputs"):
        ModelConfig(**base, inputs=text_inputs(encoding()))
    with pytest.raises(ValidationError, match="a sparse text model takes the inputs"):
        ModelConfig(**base, inputs=text_inputs(form)[:1])
