# schema: validate OCPP 2.0.1 payloads against the compact tables in ocpp_schema.
# MIT licence. Ours because jsonschema does not fit a microcontroller and no MicroPython package validates JSON schemas.  # noqa: E501
#
#   validate("GetVariablesRequest", payload)   None, or raises SchemaError; KeyError if the
#                                               message has no table
#   SchemaError: .code (OCPP-J error code), .path ("getVariableData[2].component.name", "" for
#                the payload itself), .why; str() gives "code at path: why"
#
# The first defect found wins, in a fixed order: the type of the value itself, then unknown
# properties (the first in sorted order), then missing required properties, then each present
# property in schema order (array items in index order). Error codes:
#   FormatViolation                payload not an object; unknown property
#   OccurrenceConstraintViolation  required property missing; array size out of min/maxItems
#   TypeConstraintViolation        wrong JSON type (5.0 or true is no integer, true no number);
#                                  string longer than maxLength
#   PropertyConstraintViolation    unknown enum value, bad date-time, number out of range
#
# Checks return None or an error and do not raise, so a valid payload allocates nothing for
# error handling; the path is built only when validate() raises. Table format: see the top of
# ocpp_schema.py (tools/gen_schema.py makes it; the kind codes below must match KIND_NAMES).

try:
    from micropython import const
except ImportError:  # plain CPython, without tests_host/mpcompat.py

    def const(x):
        return x


import ocpp_schema
import rfc3339

FORMAT = "FormatViolation"
OCCURRENCE = "OccurrenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"

_STR = const(0)
_DT = const(1)
_ENUM = const(2)
_INT = const(3)
_NUM = const(4)
_BOOL = const(5)
_OBJ = const(6)
_OPEN = const(7)
_ARR = const(8)
_ANY = const(9)


class SchemaError(Exception):
    """A payload breaks its schema: .code is the OCPP-J error code, .path where, .why what."""

    def __init__(self, code, why, path=""):
        super().__init__(code, why)
        self.code = code
        self.why = why
        self.path = path
        self._where = None  # path segments, innermost first, while the error travels up

    def __str__(self):
        return "%s at %s: %s" % (self.code, self.path or "(payload)", self.why)


def _err(code, why, where):
    e = SchemaError(code, why)
    e._where = [where]
    return e


def _value(kind, arg, v):
    """None if v matches (kind, arg), else a SchemaError whose _where lacks v's own segment."""
    if kind <= _ENUM:  # _STR, _DT, _ENUM
        if not isinstance(v, str):
            return SchemaError(TYPE, "string expected")
        if kind == _STR:
            if arg is not None and len(v) > arg:
                return SchemaError(TYPE, "string longer than %d" % arg)
        elif kind == _ENUM:
            if v not in arg:
                return SchemaError(PROPERTY, "not an allowed value")
        else:
            try:
                rfc3339.check(v)
            except ValueError:
                return SchemaError(PROPERTY, "not an RFC 3339 date-time")
        return None
    if kind == _OBJ or kind == _OPEN:
        if not isinstance(v, dict):
            return SchemaError(TYPE, "object expected")
        return _object(arg, v, kind == _OBJ)
    if kind == _INT or kind == _NUM:
        t = type(v)
        if t is not int and (kind == _INT or t is not float):
            return SchemaError(TYPE, "integer expected" if kind == _INT else "number expected")
        if arg is not None:
            lo, hi = arg
            if lo is not None and v < lo:
                return SchemaError(PROPERTY, "less than %s" % lo)
            if hi is not None and v > hi:
                return SchemaError(PROPERTY, "greater than %s" % hi)
        return None
    if kind == _ARR:
        if not isinstance(v, list):
            return SchemaError(TYPE, "array expected")
        lo, hi, ikind, iarg = arg
        n = len(v)
        if n < lo:
            return SchemaError(OCCURRENCE, "fewer than %d items" % lo)
        if hi is not None and n > hi:
            return SchemaError(OCCURRENCE, "more than %d items" % hi)
        for i in range(n):
            e = _value(ikind, iarg, v[i])
            if e is not None:
                _push(e, i)
                return e
        return None
    if kind == _BOOL:
        if type(v) is not bool:
            return SchemaError(TYPE, "boolean expected")
        return None
    return None  # _ANY


def _push(e, seg):
    if e._where is None:
        e._where = [seg]
    else:
        e._where.append(seg)


def _object(table, obj, closed):
    names, codes, args = table
    if closed:
        for k in obj:
            if k not in names:
                return _unknown(names, obj)
    n = len(names)
    for i in range(n):
        if codes[i] & 1 and names[i] not in obj:
            return _err(OCCURRENCE, "required property missing", names[i])
    for i in range(n):
        name = names[i]
        if name in obj:
            e = _value(codes[i] >> 1, args[i], obj[name])
            if e is not None:
                _push(e, name)
                return e
    return None


def _unknown(names, obj):
    first = None
    for k in obj:
        if k not in names and (first is None or str(k) < str(first)):
            first = k
    return _err(FORMAT, "unknown property", str(first))


def _path(where):
    if not where:
        return ""
    out = []
    for i in range(len(where) - 1, -1, -1):
        seg = where[i]
        if type(seg) is int:
            out.append("[%d]" % seg)
        else:
            if out:
                out.append(".")
            out.append(seg)
    return "".join(out)


# name -> the object table of that message, or None (tests put tables of all messages here).
table = ocpp_schema.table


def validate(name, payload):
    """Check payload against the table of message name; raise SchemaError on the first defect,
    KeyError for a message without a table."""
    t = table(name)
    if t is None:
        raise KeyError(name)
    if not isinstance(payload, dict):
        raise SchemaError(FORMAT, "payload is not an object")
    e = _object(t, payload, True)
    if e is not None:
        e.path = _path(e._where)
        raise e
