"""Book levels parsed natively from JSON: the same floats and the same refusals as msgspec's decode."""

from __future__ import annotations

import math
import struct

import msgspec
import orjson
import pytest
from fluxforge_native import Levels
from hypothesis import given, settings
from hypothesis import strategies as st

_reference = msgspec.json.Decoder(list[tuple[float, float]])


def _bits(pairs: list[tuple[float, float]]) -> list[bytes]:
    """Each value's exact bits, so that 0.0 and -0.0 differ."""
    return [struct.pack("<dd", p, q) for p, q in pairs]


def _parsed_alike(raw: bytes) -> None:
    """Levels.from_json gives msgspec's values bit for bit, or msgspec's refusal in its own words."""
    try:
        expected = _reference.decode(raw)
    except msgspec.ValidationError as exc:
        with pytest.raises(ValueError) as refused:
            Levels.from_json(raw, "$")
        assert str(refused.value).removesuffix(" - at `$`") == str(exc)  # msgspec names no path at the root
        return
    assert _bits(Levels.from_json(raw, "$").pairs()) == _bits(expected)


# JSON number texts of every shape: integers, decimals of up to 25 digits, exponents, signs.
_digits = st.text("0123456789", min_size=1, max_size=25)
_number_text = st.builds(
    lambda sign, whole, fraction, exponent: (
        sign
        + (whole.lstrip("0") or "0")
        + (f".{fraction}" if fraction else "")
        + (f"e{exponent}" if exponent is not None else "")
    ),
    st.sampled_from(["", "-"]),
    _digits,
    st.none() | _digits,
    st.none() | st.integers(-330, 310).map(str) | st.integers(0, 30).map(lambda e: f"+{e}"),
)
NUMBER_TEXTS = st.lists(st.tuples(_number_text, _number_text), max_size=12)
FLOATS = st.lists(
    st.tuples(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False)), max_size=12
)


@settings(max_examples=400, deadline=None)
@given(NUMBER_TEXTS, st.sampled_from(["", " ", "\n\t "]))
def test_number_texts_parse_to_msgspecs_floats(pairs: list[tuple[str, str]], space: str) -> None:
    raw = ("[" + ",".join(f"{space}[{p},{space}{q}]{space}" for p, q in pairs) + "]").encode()
    _parsed_alike(raw)


@settings(max_examples=300, deadline=None)
@given(FLOATS)
def test_floats_as_json_writes_them_parse_back_exactly(pairs: list[tuple[float, float]]) -> None:
    finite = [(p, q) for p, q in pairs if math.isfinite(q)]
    raw = orjson.dumps(finite)
    assert _bits(Levels.from_json(raw, "$.bids").pairs()) == _bits(_reference.decode(raw))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{}", "Expected `array`, got `object` - at `$.bids`"),
        (b"null", "Expected `array`, got `null` - at `$.bids`"),
        (b"[1]", "Expected `array`, got `int` - at `$.bids[0]`"),
        (b"[[1.0,2],1.5]", "Expected `array`, got `float` - at `$.bids[1]`"),
        (b"[[]]", "Expected `array` of length 2 - at `$.bids[0]`"),
        (b"[[1]]", "Expected `array` of length 2 - at `$.bids[0]`"),
        (b"[[1,2,3]]", "Expected `array` of length 2 - at `$.bids[0]`"),
        (b'[["1",2]]', "Expected `float`, got `str` - at `$.bids[0][0]`"),
        (b"[[1,true]]", "Expected `float`, got `bool` - at `$.bids[0][1]`"),
        (b"[[1,2],[null,2]]", "Expected `float`, got `null` - at `$.bids[1][0]`"),
        (b"[[1,2],[3,{}]]", "Expected `float`, got `object` - at `$.bids[1][1]`"),
        (b"[[1e400,1]]", "Number out of range - at `$.bids[0][0]`"),
        (b"[[1,2]] [[3,4]]", "invalid JSON: text after the levels - at `$.bids`"),
    ],
)
def test_a_bad_side_is_refused_in_msgspecs_words(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        Levels.from_json(raw, "$.bids")
    assert str(refused.value) == reason
    with pytest.raises(msgspec.DecodeError) as msgspec_refused:
        _reference.decode(raw)
    if isinstance(msgspec_refused.value, msgspec.ValidationError):
        assert reason.startswith(str(msgspec_refused.value).split(" - at ")[0])


def test_an_integer_zero_is_positive_zero_as_python_converts_it() -> None:
    assert _bits(Levels.from_json(b"[[-0,1],[-0.0,1]]", "$").pairs()) == _bits([(0.0, 1.0), (-0.0, 1.0)])


def test_levels_read_like_the_list_of_pairs_they_hold() -> None:
    pairs = [(3.0, 1.0), (2.5, 2.0), (2.0, 0.5)]
    levels = Levels.from_pairs(pairs)
    assert len(levels) == 3 and bool(levels) and not Levels.from_pairs([])
    assert levels[0] == (3.0, 1.0) and levels[-1] == (2.0, 0.5)
    assert (
        levels[:2] == pairs[:2] and levels[1:] == Levels.from_pairs(pairs[1:]) and levels[::2] == pairs[::2]
    )
    assert list(levels) == pairs == levels.pairs() and levels == pairs
    assert levels != [(3.0, 1.0)]
    with pytest.raises(IndexError):
        levels[3]
    assert repr(levels) == f"Levels({pairs!r})"


@pytest.mark.parametrize("bad", [[(1.0, 2.0, 3.0)], [(1.0,)], [(True, 1.0)], [("1", 1.0)], [(1.0, None)]])
def test_pairs_that_are_not_two_numbers_are_refused(bad: list[tuple[object, ...]]) -> None:
    with pytest.raises((TypeError, ValueError)):
        Levels.from_pairs(bad)  # type: ignore[arg-type]
