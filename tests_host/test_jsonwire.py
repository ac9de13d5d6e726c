"""lib/jsonwire.py: the strict, bounded check of received JSON text against CPython's strict
json and UTF-8 codec, the surrogate-pair rewrite, the message-type and id prefix, the float
text and the UTF-8 repair of what goes out; the same cases again on the MicroPython unix port,
where the check must agree exactly and stay fast."""

import asyncio
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jsonwire
from jsonwire import BAD, BIG, LONE, LONG, OK

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

# (text, status, kind, uid): the fuzz cases and the corners of the grammar.
CASES = [
    (b'[2,"id","Heartbeat",{}]', OK, 2, "id"),
    (b' \t\r\n[ 3 , "id" , { } ] \n', OK, 3, "id"),
    (b'[2,"r11","TriggerMessage",{"requestedMessage":"Heartbeat",},]', BAD, 2, "r11"),
    (b"[1,]", BAD, 1, None),
    (b'{"a":1,}', BAD, None, None),
    (b"[1 2]", BAD, 1, None),
    (b"[1]}", BAD, 1, None),
    (b"[02]", BAD, 0, None),
    (b'["\\q"]', BAD, None, None),
    (b'["a\tb"]', BAD, None, None),
    (b'["a\nb"]', BAD, None, None),
    (b'["a\x00b"]', BAD, None, None),
    (b"[1]\x00", BAD, 1, None),
    (b"[1.]", BAD, None, None),
    (b"[.5]", BAD, None, None),
    (b"[1,,2]", BAD, 1, None),
    (b"[tru]", BAD, None, None),
    (b"[truex]", BAD, None, None),
    (b"[NaN]", BAD, None, None),
    (b"[Infinity]", BAD, None, None),
    (b"[-]", BAD, None, None),
    (b"[1e]", BAD, None, None),
    (b"[1e+]", BAD, None, None),
    (b"[+1]", BAD, None, None),
    (b'{"a" 1}', BAD, None, None),
    (b"{1:2}", BAD, None, None),
    (b'{"a":1 "b":2}', BAD, None, None),
    (b"[", BAD, None, None),
    (b"", BAD, None, None),
    (b"  ", BAD, None, None),
    (b'["abc', BAD, None, None),
    (b'["\\"]', BAD, None, None),
    (b'["\\u12"]', BAD, None, None),
    (b'["\\u12G4"]', BAD, None, None),
    (b"\xef\xbb\xbf[1]", BAD, None, None),
    (b"[1]\xc2\xa0", BAD, 1, None),
    (b'["\xc0\xaf"]', BAD, None, None),
    (b'["\xe0\x80\xaf"]', BAD, None, None),
    (b'["\xed\xa0\x80"]', BAD, None, None),
    (b'["\xed\xa0\xbd\xed\xb8\x80"]', BAD, None, None),
    (b'["\xf4\x90\x80\x80"]', BAD, None, None),
    (b'["\xf8\x88\x80\x80\x80"]', BAD, None, None),
    (b'["\x80"]', BAD, None, None),
    (b'["\xc3"]', BAD, None, None),
    (b'["\xc3\x28"]', BAD, None, None),
    (b'[2,"x\xc3\xa9","A",{"a":"\xc0\xaf"}]', BAD, 2, "x\u00e9"),
    (b'["\\ud800"]', LONE, None, None),
    (b'["\\udc00"]', LONE, None, None),
    (b'["\\ud800\\u0041"]', LONE, None, None),
    (b'["\\udc00\\ud800"]', LONE, None, None),
    (b'{"\\ud800":1}', LONE, None, None),
    (b'[2,"\\ud800","X",{}]', LONE, 2, None),
    (b'[2,"id","X",{"a":"\\ud800"}]', LONE, 2, "id"),
    (b'["\\udbff\\udfff"]', OK, None, None),
    (b'[2,"a\\u00e9\\ud83d\\ude00","X",{}]', OK, 2, "a\u00e9\U0001f600"),
    (b'[2,"a\\"b","X",{}]', OK, 2, 'a"b'),
    (b'["a\\/b\\"c\\\\\\b\\f\\n\\r\\t"]', OK, None, None),
    (b'["\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf"]', OK, None, None),
    (b"[true,false,null,-0,0.5,1E5,1e-5,-1.5E+3]", OK, None, None),
    (b'"x"', OK, None, None),
    (b"5", OK, None, None),
    (b"[]", OK, None, None),
    (b"{}", OK, None, None),
    (b'[2.0,"a"]', OK, None, None),
    (b'[-3,"a"]', OK, -3, "a"),
    (b'[2,""]', OK, 2, None),
    (b'[2,"' + b"a" * 36 + b'"]', OK, 2, "a" * 36),
    (b'[2,"' + b"a" * 37 + b'"]', OK, 2, None),
    (b'[2,"' + "\u00e9".encode() * 36 + b'"]', OK, 2, "\u00e9" * 36),
    (b'[2,"' + b"\\ud83d\\ude00" * 36 + b'"]', OK, 2, "\U0001f600" * 36),
    (b'[2,5,"X",{}]', OK, 2, None),
    (b'["2","a"]', OK, None, None),
    (b"[" * 32 + b"]" * 32, OK, None, None),
    (b"[" * 33 + b"]" * 33, BIG, None, None),
    (b"[" * 25000 + b"]" * 25000, BIG, None, None),
    (b"[" + b"9" * 60000 + b',"id","Heartbeat",{}]', OK, LONG, "id"),
    (b"[" + b"9" * 9 + b',"id"]', OK, 999999999, "id"),
    (b"[" + b"9" * 10 + b',"id"]', OK, LONG, "id"),
    (b'[2,"id",' + b"1" * 64 + b"]", OK, 2, "id"),
    (b'[2,"id",' + b"1" * 65 + b"]", BIG, 2, "id"),
    (b'[2,"id",0.' + b"0" * 70 + b"1]", BIG, 2, "id"),
    (b'[2,"id",1e308]', OK, 2, "id"),
    (b'[2,"id",1e400]', BIG, 2, "id"),
    (b'[2,"id",-1e400]', BIG, 2, "id"),
]


@pytest.mark.parametrize("text, status, kind, uid", CASES)
def test_cases(text, status, kind, uid):
    r = jsonwire.check_now(bytearray(text))
    assert (r.status, r.kind, r.uid) == (status, kind, uid), r.why
    assert (r.why == "") == (status == OK)
    if status == OK and kind != LONG:  # ocppj never parses a LONG one
        assert json.loads(r.text) == json.loads(text.decode("utf-8", "surrogatepass"))


def test_surrogate_pairs_are_rewritten_into_their_character():
    r = jsonwire.check_now(b'{"a":"\\ud83d\\ude00 \\u00e9 \\\\ud83d\\ud83d\\ude01"}')
    assert r.status == OK
    assert bytes(r.text) == '{"a":"\U0001f600 \\u00e9 \\\\ud83d\U0001f601"}'.encode()


def test_what_is_not_rewritten_is_not_copied():
    data = bytearray(b'[2,"id","X",{"a":"\\u00e9"}]')
    assert jsonwire.check_now(data).text is data


def test_check_yields_to_the_loop_on_long_texts():
    data = json.dumps([2, "x", "DataTransfer", {"data": ["\u00e9" * 50] * 1000}]).encode()
    steps = sum(1 for _ in jsonwire._scan(jsonwire.Checked(data), data))
    assert steps >= len(data) // 2048 - 1

    async def go():
        return await jsonwire.check(data)

    assert asyncio.run(go()).status == OK


# -- against CPython's strict json and UTF-8 codec --------------------------------------------


def _lone(v):
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if any(0xD800 <= ord(c) < 0xE000 for c in x):
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, float) and math.isinf(x):
            return "inf"
    return False


def oracle(data):
    """The verdict of CPython's strict decoder and json (NaN, Infinity refused)."""
    try:
        text = bytes(data).decode("utf-8")
        v = json.loads(text, parse_constant=lambda c: 1 / 0)
    except (ValueError, ZeroDivisionError, RecursionError):
        return BAD
    lone = _lone(v)
    return BIG if lone == "inf" else LONE if lone else OK


CHARS = st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(
    '\u00e9\u20ac\U0001f600\U0010ffff\x00\x1f"\\/'
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARS, max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(CHARS, max_size=4), kids),
    max_leaves=12,
)


def encode(v, ascii_only, pretty):
    return json.dumps(v, ensure_ascii=ascii_only, indent=1 if pretty else None).encode()


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans(), st.booleans())
def test_every_json_text_passes_and_parses_to_the_same(v, ascii_only, pretty):
    data = encode(v, ascii_only, pretty)
    r = jsonwire.check_now(data)
    assert r.status == OK, r.why
    assert json.loads(r.text) == v


JUNK = [
    b",", b"]", b"}", b"[", b"{", b":", b'"', b"\\", b"0", b"1", b".", b"e", b"-", b" ",
    b"\t", b"\n", b"\x00", b"\x7f", b"\\u", b"\\ud800", b"\\udc00", b"\\ud83d\\ude00",
    b"\xc0\xaf", b"\xed\xa0\x80", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\x80", b"\xff", b"t",
    b"null", b"true", b"1e999",
]  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    VALUES,
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(JUNK), st.integers(0, 2))),
)
def test_a_mangled_text_gets_the_verdict_of_a_strict_parser(v, ascii_only, edits):
    data = bytearray(encode(v, ascii_only, False))
    for at, junk, cut in edits:
        at %= len(data) + 1
        data[at : at + cut] = junk
    got, want = jsonwire.check_now(data).status, oracle(data)
    # The first defect wins: a number out of range before a syntax error makes it BIG.
    assert got == want or (got, want) == (BIG, BAD), bytes(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_utf8_error_agrees_with_cpythons_strict_decoder(b):
    at = jsonwire.utf8_error(b, 0, len(b))
    try:
        b.decode("utf-8")
        assert at == -1
    except UnicodeDecodeError as e:
        assert at == e.start


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_utf8_fix_always_gives_utf8_and_keeps_what_was_utf8(b):
    fixed = jsonwire.utf8_fix(b)
    fixed.decode("utf-8")
    if jsonwire.utf8_error(b, 0, len(b)) < 0:
        assert fixed == b


def test_utf8_fix_joins_cesu_pairs():
    assert jsonwire.utf8_fix(b"a\xed\xa0\xbd\xed\xb8\x80b\xed\xa0\x80c") == (
        "a\U0001f600b\ufffdc".encode()
    )


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_num_text_is_the_shortest_text_that_reads_back(x):
    def digits(t):
        return len(t.lower().split("e")[0].lstrip("-").replace(".", "").strip("0"))

    t = jsonwire.num_text(x)
    assert float(t) == x and json.loads(t) == x
    # CPython's repr is the shortest round trip; up to 15 digits num_text finds it too
    # (but for subnormals, which have fewer digits to give).
    shortest = digits(repr(x))
    if shortest <= 15 and (x == 0 or abs(x) >= sys.float_info.min):
        assert digits(t) == shortest
    if abs(x) < 1e15 and (x == 0 or abs(x) >= 1e-4):
        assert t == repr(x)  # and written the same way


def test_dumps_writes_floats_as_meant_and_leaves_the_payload_alone():
    payload = [3, "x", {"v": [76.15, 795.81, 1.0, 2], "n": None, "t": (1.5,)}]
    assert jsonwire.dumps(payload) == b'[3,"x",{"v":[76.15,795.81,1.0,2],"n":null,"t":[1.5]}]'
    assert payload == [3, "x", {"v": [76.15, 795.81, 1.0, 2], "n": None, "t": (1.5,)}]
    assert all(type(x) is float for x in payload[2]["v"][:3])


# -- the same on MicroPython ---------------------------------------------------------------------

_MP_SCRIPT = """
import json
import random

import jsonwire


def show(r):
    uid = "-" if r.uid is None else r.uid.encode().hex()
    return "%d %s %s" % (r.status, r.kind, uid)


for data in CASES:
    print(show(jsonwire.check_now(bytearray(data))))
print("--")
# What comes back out: a CESU-8 string (MicroPython's json on a pair escape) is mended.
cesu = json.loads('"\\\\ud83d\\\\ude00"')
print(bytes(jsonwire.dumps([1, cesu, "\\u00e9", 76.15, round(795.81, 2), 1693300.0])).hex())
# Floats as the decimals meant: round(x, 2) written with at most 2 decimals, and read back.
random.seed(5)
bad = []
for _ in range(20000):
    n = random.getrandbits(28) - (1 << 27)
    x = round(n / 100, 2)
    t = jsonwire.num_text(x)
    want = "%d.%02d" % (abs(n) // 100, abs(n) % 100)
    want = want.rstrip("0")
    want = ("-" if n < 0 and x != 0 else "") + (want + "0" if want.endswith(".") else want)
    if t != want or float(t) != x:
        bad.append((n, t, want))
print("decimals", len(bad), bad[:3])
# How often the check of a large text yields (the loop runs on between two yields).
for data in BIG_TEXTS:
    r = jsonwire.Checked(data)
    n = 0
    for _ in jsonwire._scan(r, data):
        n += 1
    print("big", r.status, len(data), n)
"""


def _big_texts():
    gv = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    return [
        json.dumps([2, "x", "GetVariables", {"getVariableData": [gv] * 700}]).encode(),
        json.dumps([2, "x", "DataTransfer", {"vendorId": "v", "data": "a" * 64000}]).encode(),
        json.dumps(["\u00e9" * 32000], ensure_ascii=False).encode(),
        json.dumps(["\U0001f600" * 5000]).encode(),
        ("[" + ",".join(["123.25"] * 9000) + "]").encode(),
        b"[" + b"7" * 60000 + b',"x",{}]',
        b"[" * 25000 + b"]" * 25000,
    ]


def test_on_micropython(tmp_path):
    rng = random.Random(7)
    fuzz = []
    for _ in range(400):  # mangled texts, as above, seeded
        msg = [2, "id%d" % rng.randrange(99), {"a": ["\u00e9\U0001f600", 1.5]}]
        data = bytearray(json.dumps(msg, ensure_ascii=rng.random() < 0.5).encode())
        for _ in range(rng.randrange(4)):
            at = rng.randrange(len(data) + 1)
            data[at : at + rng.randrange(3)] = rng.choice(JUNK)
        fuzz.append(bytes(data))
    cases = [c[0] for c in CASES] + fuzz
    script = tmp_path / "mp_jsonwire.py"
    script.write_text("CASES = %r\nBIG_TEXTS = %r\n%s" % (cases, _big_texts(), _MP_SCRIPT))
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    sep = lines.index("--")
    for data, line in zip(cases, lines[:sep], strict=True):
        r = jsonwire.check_now(data)
        uid = "-" if r.uid is None else r.uid.encode().hex()
        assert line == "%d %s %s" % (r.status, r.kind, uid), data
    for data in fuzz:
        got, want = jsonwire.check_now(data).status, oracle(data)
        assert got == want or (got, want) == (BIG, BAD), data
    rest = lines[sep + 1 :]
    sent = bytes.fromhex(rest[0])
    assert sent == '[1,"\U0001f600","\u00e9",76.15,795.81,1693300.0]'.encode()
    assert rest[1] == "decimals 0 []"
    big = [line.split()[1:] for line in rest[2:]]
    assert [b[0] for b in big] == ["0"] * 6 + ["3"]
    # The check yields every jsonwire._STEP bytes or so (a run of digits is read in slices by
    # C, not byte by byte): no text holds the loop for long. How long that is on a board is
    # a figure of make bench (loop_stall), not a timed test's.
    for _, size, yields in big[:6]:
        assert int(yields) >= int(size) // jsonwire._STEP - 1, (size, yields)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=700)
    | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(0, 700),
)
def test_the_chunked_utf8_check_of_what_goes_out_agrees(b, pad):
    b = b"a" * pad + b
    assert jsonwire._utf8_bad(b) == (jsonwire.utf8_error(b, 0, len(b)) >= 0)
