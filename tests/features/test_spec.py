import re

import pytest
import torch

from flopcast.features.spec import SpecError, parse_dims, parse_spec


@pytest.mark.parametrize(
    ("text", "dtype", "dims", "high"),
    [
        ("float32[B,3,224,224]", "float32", ("B", 3, 224, 224), None),
        ("int64[B,128]<30522", "int64", ("B", 128), 30522),
        ("bool[B,S]", "bool", ("B", "S"), None),
        (" bfloat16[ 4 , S ] ", "bfloat16", (4, "S"), None),
        ("uint8[]", "uint8", (), None),
    ],
)
def test_parse_valid(text, dtype, dims, high):
    s = parse_spec(text)
    assert (s.dtype, s.dims, s.high) == (dtype, dims, high)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("float33[B,3]", "unknown dtype 'float33'"),
        ("float32[B,3.5]", "bad dim '3.5'"),
        ("float32[B,-1]", "bad dim '-1'"),
        ("float32(B,3)", "expected DTYPE[DIM,...]"),
        ("float32[B]<10", "only applies to integer dtypes"),
        ("int64[B]<x", "bad bound 'x'"),
        ("int64[B]<0", "bad bound '0'"),
    ],
)
def test_parse_invalid_names_token(text, fragment):
    with pytest.raises(SpecError, match=re.escape(fragment)):
        parse_spec(text)


def test_shape_binds_symbols_and_names_unbound():
    s = parse_spec("int64[B,S]<100")
    assert s.shape({"B": 2, "S": 7}) == (2, 7)
    with pytest.raises(SpecError, match=r"symbol 'S'.*--dim S=<int>"):
        s.shape({"B": 2})
    with pytest.raises(SpecError, match="--batch-size"):
        parse_spec("float32[B]").shape({})


def test_materialize_respects_bounds_and_dtype():
    t = parse_spec("int32[B,50]<7").materialize({"B": 3})
    assert t.dtype == torch.int32 and t.shape == (3, 50)
    assert int(t.min()) >= 0 and int(t.max()) < 7


@pytest.mark.parametrize("bad", ["S", "S=", "=3", "S=x", "1S=3"])
def test_parse_dims_rejects(bad):
    with pytest.raises(SpecError, match="bad --dim"):
        parse_dims([bad])


def test_parse_dims():
    assert parse_dims(["S=1024", " T = 3"]) == {"S": 1024, "T": 3}
