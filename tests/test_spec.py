"""The spec grammar: table-driven cases, canonical printing, errors that say where."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmzoo.errors import SpecSyntaxError
from ssmzoo.spec import Spec, format_value, parse, parse_value

PARSES = [
    ("s6", Spec("s6")),
    ("b2s6-nobias", Spec("b2s6-nobias")),
    ("s6()", Spec("s6")),
    ("b2s6(h=8)", Spec("b2s6", {"h": 8})),
    ("b2s6(h=-3)", Spec("b2s6", {"h": -3})),
    ("x(lr=1e-3)", Spec("x", {"lr": 1e-3})),
    ("x(lr=-2.5)", Spec("x", {"lr": -2.5})),
    ("x(lr=.5)", Spec("x", {"lr": 0.5})),
    ("x(lr=2E+2)", Spec("x", {"lr": 200.0})),
    ("x(hi=inf, lo=-inf)", Spec("x", {"hi": math.inf, "lo": -math.inf})),
    ("x(a=true, b=false, c=none)", Spec("x", {"a": True, "b": False, "c": None})),
    ("x(pool=mean)", Spec("x", {"pool": Spec("mean")})),
    ("x(s=\"a b, c\")", Spec("x", {"s": "a b, c"})),
    ("x(s='it\\'s')", Spec("x", {"s": "it's"})),
    ("x(l=[1, 2.5, \"q\", [true]])", Spec("x", {"l": [1, 2.5, "q", [True]]})),
    ("x(l=[])", Spec("x", {"l": []})),
    ("x(l=[1,],)", Spec("x", {"l": [1]})),
    ("mamba(core=b2s6(h=8, bias=false))", Spec("mamba", {"core": Spec("b2s6", {"h": 8, "bias": False})})),
    ("  lm ( mixer = mamba ( core = s6 ) , d_model = 64 )  ",
     Spec("lm", {"mixer": Spec("mamba", {"core": Spec("s6")}), "d_model": 64})),
    ("x(info=information)", Spec("x", {"info": Spec("information")})),
    ("x(dotted.key=1)", Spec("x", {"dotted.key": 1})),
]


@pytest.mark.parametrize("text,expected", PARSES, ids=[p[0] for p in PARSES])
def test_parse(text, expected):
    got = parse(text)
    assert got == expected
    # canonical printing is a fixed point
    assert str(parse(str(got))) == str(got)
    assert parse(str(got)) == got


def test_canonical_text():
    assert str(parse("mamba( core=b2s6(h=8,bias=false) )")) == "mamba(core=b2s6(h=8, bias=false))"
    assert str(parse("x(lr=1e-3)")) == "x(lr=0.001)"
    assert str(parse("x(s=\"a\\\"b\")")) == 'x(s="a\\"b")'
    assert str(parse("x()")) == "x"


def test_types_are_kept():
    s = parse("x(i=1, f=1.0, b=true)")
    assert type(s.args["i"]) is int and type(s.args["f"]) is float and s.args["b"] is True


ERRORS = [
    ("b2s6(h=8", 9, "to close the '(' at column 5"),
    ("b2s6(h=)", 8, "a value"),
    ("b2s6(=8)", 6, "a key"),
    ("b2s6(h 8)", 8, "'='"),
    ("b2s6(h=8))", 10, "unbalanced ')'"),
    ("(h=8)", 1, "a name"),
    ("", 1, "a name"),
    ("x(a=1, a=2)", 8, "each key once"),
    ("x(a=2x)", 6, "after a number"),
    ("x(s=\"open)", 5, "closing \""),
    ("x(l=[1, 2)", 10, "',' or ']'"),
    ("x(l=[1, 2", 10, "to close the '[' at column 5"),
    ("b2s6 h", 6, "'(' or end of spec"),
]


@pytest.mark.parametrize("text,column,expected", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_syntax_errors_say_where(text, column, expected):
    with pytest.raises(SpecSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.column == column, str(err)
    assert expected in str(err)
    lines = str(err).splitlines()
    assert f"column {column}" in lines[0]
    # the caret sits under the offending character
    assert lines[2].index("^") - 2 == column - 1


def test_parse_value():
    assert parse_value("3e-4") == 3e-4
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("b2s6(h=4)") == Spec("b2s6", {"h": 4})
    with pytest.raises(SpecSyntaxError):
        parse_value("1 2")


def test_spec_equality_and_hash():
    a, b = parse("x(a=1, b=2)"), parse("x(b=2, a=1)")
    assert a == b and a == "x(a=1, b=2)" and a != "x(a=2)" and a != "x(a="
    assert hash(parse("x(a=1)")) == hash(parse("x( a=1 )"))
    assert parse("x").replace(h=2) == parse("x(h=2)")


# ---- property test: printing then parsing is the identity on specs ------------------------------
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "none", "inf", "nan"))
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
scalars = st.one_of(
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, width=64),
    st.booleans(),
    st.none(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    names.map(Spec),
)


def _specs(values):
    return st.builds(lambda n, kv: Spec(n, kv), names, st.dictionaries(keys, values, max_size=3))


values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), _specs(inner)),
                      max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_specs(values))
def test_print_parse_roundtrip(spec):
    text = str(spec)
    again = parse(text)
    assert again == spec
    assert str(again) == text


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False))
def test_float_roundtrip(x):
    assert parse_value(format_value(x)) == x


def test_word_like_strings_print_bare_and_resolve_back():
    assert format_value("zoh") == "zoh"
    assert format_value("b2s6-nobias") == "b2s6-nobias"
    for quoted in ("true", "none", "inf", "a b", "1e3", "", "-x"):
        assert format_value(quoted).startswith('"'), quoted
        assert parse_value(format_value(quoted)) == quoted
    s = Spec("s6", {"discretization": "zoh"})
    assert str(s) == "s6(discretization=zoh)" and parse(str(s)) == s


def test_fullwidth_digit_is_a_syntax_error_at_its_column():
    # issue 23: b2s6(h=８) read as 8 because \d matches Unicode digits
    with pytest.raises(SpecSyntaxError) as info:
        parse("b2s6(h=\uff18)")
    assert info.value.column == 8
    with pytest.raises(SpecSyntaxError) as info:
        parse("b2s6(h=8\uff18)")
    assert info.value.column == 9
    assert parse("b2s6(h=8)").args["h"] == 8
