# rfc3339: RFC 3339 date-time parsing and formatting in UTC, as OCPP uses on the wire.
# MIT licence. Ours because MicroPython has no datetime module and its epoch differs by port.
#
# All times are counted from 1970-01-01T00:00:00Z in the proleptic Gregorian calendar, with
# plain integer arithmetic (no time.mktime: the ESP32 port counts from 2000, unix from 1970).
#
#   parse(s)      "2024-02-29T12:00:00.5+01:00" -> int seconds (fraction dropped)
#   check(s)      None, or ValueError like parse (cheaper: no big integers)
#   parse_ms(s)   same -> int milliseconds (fraction truncated to milliseconds)
#   format(t)     int seconds -> "YYYY-MM-DDTHH:MM:SSZ"
#   format_ms(t)  int milliseconds -> "YYYY-MM-DDTHH:MM:SS.mmmZ"
#   assume_utc(s) "2026-12-05T19:40:00.123" -> "2026-12-05T19:40:00.123Z"; None unless s is a
#                 date-time without its time zone (for lenient readers; logged once)
#
# parse accepts exactly YYYY-MM-DD(T|t)HH:MM:SS[.digits](Z|z|+HH:MM|-HH:MM) and raises
# ValueError for anything else. Second 60 (a leap second) reads as the last millisecond of
# second 59, since Unix time has no leap seconds.

import log

# Days before the first of each month in a common year.
_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _mdays(y, m):
    if m == 2:
        return 29 if _leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _year_start(y):
    # Days from 1970-01-01 to January 1st of year y. p counts the leap days of the years
    # 1..y-1 (floor division keeps this right for years before 1 too); 477 is p for 1970.
    p = y - 1
    return 365 * (y - 1970) + p // 4 - p // 100 + p // 400 - 477


def days(y, m, d):
    """Days from 1970-01-01 to the given date (negative before it)."""
    n = _year_start(y) + _BEFORE[m - 1] + d - 1
    if m > 2 and _leap(y):
        n += 1
    return n


def civil(n):
    """(year, month, day) of the date n days after 1970-01-01."""
    # 146097 days make 400 Gregorian years: estimate, then correct by at most a year.
    y = 1970 + n * 400 // 146097
    while _year_start(y) > n:
        y -= 1
    while _year_start(y + 1) <= n:
        y += 1
    n -= _year_start(y)
    m = 1
    while m < 12:
        k = _mdays(y, m)
        if n < k:
            break
        n -= k
        m += 1
    return y, m, n + 1


def _digits(s, i, n):
    v = 0
    for j in range(i, i + n):
        c = ord(s[j]) - 48
        if c < 0 or c > 9:
            raise ValueError("date-time: digit expected at %d" % j)
        v = v * 10 + c
    return v


def _sep(s, i, chars):
    if s[i] not in chars:
        raise ValueError("date-time: %r expected at %d" % (chars[0], i))


def _scan(s, unit):
    # Checks s; returns 0 for unit 0 (no big integers: on a 32-bit port, times since 1970
    # overflow small ints), else the time in seconds (unit 1) or milliseconds (unit 1000).
    if not isinstance(s, str):
        raise ValueError("date-time: not a string")
    n = len(s)
    if n < 20:
        raise ValueError("date-time: too short")
    y = _digits(s, 0, 4)
    _sep(s, 4, "-")
    mo = _digits(s, 5, 2)
    _sep(s, 7, "-")
    d = _digits(s, 8, 2)
    _sep(s, 10, "Tt")
    h = _digits(s, 11, 2)
    _sep(s, 13, ":")
    mi = _digits(s, 14, 2)
    _sep(s, 16, ":")
    sec = _digits(s, 17, 2)
    if mo < 1 or mo > 12 or d < 1 or d > _mdays(y, mo):
        raise ValueError("date-time: no such date")
    if h > 23 or mi > 59 or sec > 60:
        raise ValueError("date-time: no such time")
    i = 19
    ms = 0
    if s[i] == ".":
        i += 1
        k = i
        while i < n and "0" <= s[i] <= "9":
            i += 1
        if i == k:
            raise ValueError("date-time: digit expected at %d" % k)
        # Milliseconds: the first three digits, padded with zeros; the rest is dropped.
        for j in range(k, k + 3):
            ms = ms * 10 + (ord(s[j]) - 48 if j < i else 0)
        if i >= n:
            raise ValueError("date-time: time zone missing")
    if sec == 60:
        sec = 59
        ms = 999
    z = s[i]
    if z == "Z" or z == "z":
        if i + 1 != n:
            raise ValueError("date-time: garbage after time zone")
        off = 0
    elif z == "+" or z == "-":
        if i + 6 != n:
            raise ValueError("date-time: bad time zone offset")
        oh = _digits(s, i + 1, 2)
        _sep(s, i + 3, ":")
        om = _digits(s, i + 4, 2)
        if oh > 23 or om > 59:
            raise ValueError("date-time: bad time zone offset")
        off = oh * 60 + om
        if z == "-":
            off = -off
    else:
        raise ValueError("date-time: time zone expected at %d" % i)
    if unit == 0:
        return 0
    t = ((days(y, mo, d) * 24 + h) * 60 + mi - off) * 60 + sec
    return t if unit == 1 else t * 1000 + ms


def check(s):
    """Raise ValueError unless s is an RFC 3339 date-time string; allocates nothing if it is."""
    _scan(s, 0)


def parse(s):
    """Seconds since 1970-01-01T00:00:00Z of an RFC 3339 date-time string (fraction dropped)."""
    return _scan(s, 1)


def parse_ms(s):
    """Milliseconds since 1970-01-01T00:00:00Z of an RFC 3339 date-time string."""
    return _scan(s, 1000)


_told = [False]  # assume_utc has logged


def assume_utc(s):
    """s with "Z" added when s is a date-time but for its missing time zone, else None.

    RFC 3339 and OCPP want the offset; some CSMSs leave it out of the times they answer. Where
    nothing is at stake (a clock, a cache expiry), such a time is read as UTC: better than
    refusing the answer, which would stop the registration. Logged the first time only."""
    if not isinstance(s, str) or len(s) < 19:
        return None
    s += "Z"
    try:
        _scan(s, 0)
    except ValueError:
        return None
    if not _told[0]:
        _told[0] = True
        log.warn("time", "date-time without time zone read as UTC: %s" % s[:-1])
    return s


def _fields(t):
    n, r = divmod(t, 86400)
    y, m, d = civil(n)
    if y < 0 or y > 9999:
        raise ValueError("date-time: year out of range")
    return y, m, d, r // 3600, r // 60 % 60, r % 60


def format(t):
    """t seconds since 1970-01-01T00:00:00Z as "YYYY-MM-DDTHH:MM:SSZ"."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % _fields(t)


def format_ms(t):
    """t milliseconds since 1970-01-01T00:00:00Z as "YYYY-MM-DDTHH:MM:SS.mmmZ"."""
    s, ms = divmod(t, 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (_fields(s) + (ms,))
