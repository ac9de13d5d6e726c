"""lib/rfc3339.py against CPython's datetime, and on the MicroPython unix port."""

import calendar
import os
import re
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rfc3339

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
UTC_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 12, 31, 23, 59, 59, 999999)
)
OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


def _ms(dt):
    """Exact milliseconds since 1970 of an aware datetime (floor, no float rounding)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _text(dt, offset_min, frac="", t="T"):
    """dt (aware) written in local time at offset_min minutes east of UTC."""
    local = (dt + timedelta(minutes=offset_min)).replace(tzinfo=None)
    if offset_min == 0:
        zone = "Z"
    else:
        sign = "+" if offset_min > 0 else "-"
        zone = "%s%02d:%02d" % (sign, abs(offset_min) // 60, abs(offset_min) % 60)
    return local.strftime("%Y-%m-%d") + t + local.strftime("%H:%M:%S") + frac + zone


# An independent statement of the grammar, used as the oracle for random strings.
_GRAMMAR = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def oracle_ok(s):
    m = _GRAMMAR.fullmatch(s)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(2000 + y % 400, mo)[1]:
        return False
    if h > 23 or mi > 59 or sec > 60:
        return False
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


@settings(max_examples=500)
@given(UTC_TIMES)
def test_format_matches_datetime(naive):
    dt = naive.replace(tzinfo=timezone.utc)
    secs = _ms(dt) // 1000
    assert rfc3339.format(secs) == dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ms = _ms(dt)
    assert rfc3339.format_ms(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


@settings(max_examples=500)
@given(UTC_TIMES)
def test_round_trip(naive):
    dt = naive.replace(tzinfo=timezone.utc)
    ms = _ms(dt)
    assert rfc3339.parse(rfc3339.format(ms // 1000)) == ms // 1000
    assert rfc3339.parse_ms(rfc3339.format_ms(ms)) == ms
    assert rfc3339.parse(rfc3339.format_ms(ms)) == ms // 1000


@settings(max_examples=500)
@given(UTC_TIMES, OFFSETS, st.text("0123456789", min_size=0, max_size=9), st.sampled_from("Tt"))
def test_parse_applies_offset_and_fraction(naive, offset, digits, t):
    dt = naive.replace(tzinfo=timezone.utc, microsecond=0)
    frac = "." + digits if digits else ""
    s = _text(dt, offset, frac, t)
    ms = _ms(dt) + int((digits + "000")[:3])
    assert rfc3339.parse(s) == _ms(dt) // 1000
    assert rfc3339.parse_ms(s) == ms
    assert rfc3339.parse(s.replace("Z", "z")) == _ms(dt) // 1000
    rfc3339.check(s)
    # CPython agrees on the instant (fromisoformat takes at most microseconds).
    iso = _text(dt, offset, "." + (digits + "000000")[:6] if digits else "")
    assert _ms(datetime.fromisoformat(iso.replace("Z", "+00:00"))) == ms


@given(st.integers(min_value=0, max_value=9999), st.integers(1, 12), st.integers(1, 31))
def test_days_and_civil(y, m, d):
    if d > calendar.monthrange(2000 + y % 400, m)[1]:
        return
    n = rfc3339.days(y, m, d)
    assert rfc3339.civil(n) == (y, m, d)
    if y >= 1:
        assert n == date(y, m, d).toordinal() - date(1970, 1, 1).toordinal()


def test_known_values():
    assert rfc3339.parse("1970-01-01T00:00:00Z") == 0
    assert rfc3339.parse("2024-02-29T12:00:00.5+01:00") == 1709204400
    assert rfc3339.parse_ms("2024-02-29T12:00:00.5+01:00") == 1709204400500
    assert rfc3339.parse_ms("2000-03-01t00:00:00.123456789-00:30") == 951870600123
    assert rfc3339.parse("1969-12-31T23:59:59Z") == -1
    assert rfc3339.format(-1) == "1969-12-31T23:59:59Z"
    assert rfc3339.format_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert rfc3339.format(951782400) == "2000-02-29T00:00:00Z"
    assert rfc3339.format(253402300799) == "9999-12-31T23:59:59Z"
    assert rfc3339.parse("0000-01-01T00:00:00Z") == -62167219200
    assert rfc3339.format(-62167219200) == "0000-01-01T00:00:00Z"


def test_leap_second_clamps_to_59():
    assert rfc3339.parse("2016-12-31T23:59:60Z") == rfc3339.parse("2016-12-31T23:59:59Z")
    assert rfc3339.parse_ms("2016-12-31T23:59:60.5Z") == rfc3339.parse_ms(
        "2016-12-31T23:59:59.999Z"
    )


def test_format_range():
    with pytest.raises(ValueError):
        rfc3339.format(253402300800)  # year 10000
    with pytest.raises(ValueError):
        rfc3339.format(-62167219201)  # year -1


BAD = [
    "",
    "2024-01-01",
    "2024-01-01T00:00:00",  # no zone
    "2024-01-01T00:00:00.123",  # no zone
    "2024-01-01T00:00Z",  # no seconds
    "2024-01-01 00:00:00Z",
    "2024-01-01_00:00:00Z",
    "2024/01/01T00:00:00Z",
    "2024-1-01T00:00:00Z",
    "24-01-01T00:00:00Z",
    "+2024-01-01T00:00:00Z",
    "2024-00-01T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-01-00T00:00:00Z",
    "2024-01-32T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:60:00Z",
    "2024-01-01T23:59:61Z",
    "2024-01-01T00:00:00.Z",
    "2024-01-01T00:00:00,5Z",
    "2024-01-01T00:00:00ZZ",
    "2024-01-01T00:00:00Z ",
    " 2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00+01",
    "2024-01-01T00:00:00+0100",
    "2024-01-01T00:00:00+01:00:00",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00+01:60",
    "2024-01-01T00:00:00UTC",
    "2024-01-01T00:00:00+1:00",
    "2024-01-01T0a:00:00Z",
    "2024-01-01T00:00:00.1a2Z",
    "２０２４-01-01T00:00:00Z",  # fullwidth digits
    "2024-01-01T00:00:00Z\n",
    "2024-01-01T00:00:00\u200bZ",
]


@pytest.mark.parametrize("s", BAD)
def test_bad_rejected(s):
    assert not oracle_ok(s)
    for f in (rfc3339.parse, rfc3339.parse_ms, rfc3339.check):
        with pytest.raises(ValueError):
            f(s)


@pytest.mark.parametrize("v", [None, 0, b"2024-01-01T00:00:00Z", ["2024-01-01T00:00:00Z"]])
def test_not_a_string(v):
    with pytest.raises(ValueError):
        rfc3339.parse(v)


_CHARS = st.sampled_from("0123456789-:.TtZz+ x")


@settings(max_examples=1000)
@given(UTC_TIMES, OFFSETS, st.data())
def test_mutated_strings_agree_with_oracle(naive, offset, data):
    s = _text(naive.replace(tzinfo=timezone.utc), offset, ".25")
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(s)))
        op = data.draw(st.sampled_from("rid"))
        c = data.draw(_CHARS)
        if op == "r":
            s = s[:i] + c + s[i + 1 :]
        elif op == "i":
            s = s[:i] + c + s[i:]
        else:
            s = s[:i] + s[i + 1 :]
    ok = oracle_ok(s)
    try:
        rfc3339.check(s)
        got = True
    except ValueError:
        got = False
    assert got == ok, s


@given(st.text(max_size=40))
def test_arbitrary_text_only_value_error(s):
    try:
        rfc3339.parse(s)
    except ValueError:
        assert not oracle_ok(s)
    else:
        assert oracle_ok(s)


@pytest.mark.parametrize(
    "s", ["2026-12-05T19:40:00.123", "2026-12-05T19:40:00", "2024-02-29t23:59:60.5"]
)
def test_assume_utc_reads_a_time_without_zone_as_utc(s, logged, monkeypatch):
    monkeypatch.setattr(rfc3339, "_told", [False])
    assert rfc3339.assume_utc(s) == s + "Z"
    assert rfc3339.parse_ms(rfc3339.assume_utc(s)) == rfc3339.parse_ms(s + "Z")
    assert logged.getvalue() == " W time: date-time without time zone read as UTC: %s\n" % s
    rfc3339.assume_utc(s)
    assert logged.getvalue().count("\n") == 1  # once


@pytest.mark.parametrize(
    "s",
    [
        "2026-12-05T19:40:00Z",  # has a zone already
        "2026-12-05T19:40:00+01:00",
        "2026-12-05T19:40:00.",
        "2026-12-05T19:40",
        "2026-12-05",
        "2026-02-30T19:40:00",
        "2026-12-05T24:00:00",
        "2026-12-05 19:40:00",
        "now",
        "",
        None,
        1764963600,
    ]
    + [b for b in BAD if b not in ("2024-01-01T00:00:00", "2024-01-01T00:00:00.123")],
)
def test_assume_utc_leaves_everything_else(s):
    assert rfc3339.assume_utc(s) is None


@given(st.text(max_size=30))
def test_assume_utc_agrees_with_the_grammar(s):
    assert (rfc3339.assume_utc(s) is not None) == oracle_ok(s + "Z")


MP_SCRIPT = """
import rfc3339
for s in ("1970-01-01T00:00:00Z", "2024-02-29T12:00:00.5+01:00", "2106-02-07T06:28:16Z",
          "2016-12-31T23:59:60z", "1969-12-31t23:59:59.999-00:01"):
    print(rfc3339.parse(s), rfc3339.parse_ms(s))
for t in (0, -1, 1709204400, 4294967296, 7258118400):
    print(rfc3339.format(t), rfc3339.format_ms(t * 1000 + 7))
for s in ("2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00"):
    try:
        rfc3339.parse(s)
        print("accepted")
    except ValueError:
        print("ValueError")
print(rfc3339.assume_utc("2026-12-05T19:40:00.123"), rfc3339.assume_utc("2026-12-05T19:40Z"))
"""


def test_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "mp_rfc3339.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, MICROPYPATH=str(ROOT / "lib"))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    expected = []
    for s in (
        "1970-01-01T00:00:00Z",
        "2024-02-29T12:00:00.5+01:00",
        "2106-02-07T06:28:16Z",
        "2016-12-31T23:59:60z",
        "1969-12-31t23:59:59.999-00:01",
    ):
        expected.append("%d %d" % (rfc3339.parse(s), rfc3339.parse_ms(s)))
    for t in (0, -1, 1709204400, 4294967296, 7258118400):
        expected.append("%s %s" % (rfc3339.format(t), rfc3339.format_ms(t * 1000 + 7)))
    expected += ["ValueError"] * 3
    expected.append("2026-12-05T19:40:00.123Z None")
    lines = [x for x in out.stdout.split("\n")[:-1] if " W time: " not in x]  # the log line
    assert lines == expected
    assert rfc3339.parse("2106-02-07T06:28:16Z") == 2**32
