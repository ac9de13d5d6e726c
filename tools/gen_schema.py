# gen_schema: generate lib/ocpp_schema.py, compact OCPP 2.0.1 validation tables, from the official JSON schemas.  # noqa: E501
# MIT licence.
"""Generate lib/ocpp_schema.py from the OCPP 2.0.1 JSON schemas shipped in the `ocpp` package.

    python tools/gen_schema.py            write lib/ocpp_schema.py
    python tools/gen_schema.py --check    exit 1 if lib/ocpp_schema.py differs from the output

Only the messages the firmware implements get tables: the two lists CS_TO_CSMS and CSMS_TO_CS
below. The generator understands exactly the JSON-schema keywords the OCPP 2.0.1 schemas use
(type, properties, required, additionalProperties, enum, maxLength, format date-time, minimum,
maximum, items, minItems, maxItems, $ref to #/definitions) and stops with an error on anything
else, so extending the lists cannot silently weaken validation.

Table format
------------
The tables are plain tuples, small ints and strings, so that they cost little RAM on the
device (and nothing when frozen into flash).

An object table is a 3-tuple (names, codes, args), with one entry per property, in schema order:
  names  the property names
  codes  kind * 2 + 1 if the property is required, kind * 2 if optional
  args   the argument of the kind (below)

  kind  name  JSON value                      arg
  0     STR   string                          maxLength, or None
  1     DT    string, format date-time        None
  2     ENUM  string, one of arg              tuple of the allowed strings
  3     INT   integer (not 5.0, not a bool)   None, or (minimum, maximum), None where absent
  4     NUM   number (not a bool)             None, or (minimum, maximum), None where absent
  5     BOOL  boolean                         None
  6     OBJ   object, no other properties     object table
  7     OPEN  object, other properties ok     object table (CustomDataType: vendorId only)
  8     ARR   array                           (minItems, maxItems or None, item kind, item arg)
  9     ANY   any JSON value                  None

Each schema definition is emitted once, as a `const()` shared by every table that refers to
it (identical definitions from different schemas are one table); identical enum value tuples
are shared too. MicroPython folds them into constant tuples at compile time: frozen, the
tables cost no RAM at all, not even a global name. table(name) gives the object table of a
message ("BootNotificationResponse", "GetVariablesRequest"; None for others), always a closed
object; NAMES lists them. ACTIONS is the sorted tuple of every OCPP 2.0.1 action name.
"""

import importlib.resources
import json
import re
import sys
from pathlib import Path

# Actions the Charging Station sends: we validate the CSMS's Response.
CS_TO_CSMS = (
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "NotifyReport",
    "SecurityEventNotification",
    "MeterValues",
    "FirmwareStatusNotification",
    "LogStatusNotification",
    "Authorize",
    "TransactionEvent",
    "NotifyCustomerInformation",
    "ReportChargingProfiles",
    "NotifyChargingLimit",
    "ClearedChargingLimit",
    "ReservationStatusUpdate",
    "NotifyDisplayMessages",
    "SignCertificate",
    "NotifyEvent",
    "NotifyMonitoringReport",
)
# Actions the CSMS sends: we validate its Request.
CSMS_TO_CS = (
    "GetVariables",
    "SetVariables",
    "GetBaseReport",
    "GetReport",
    "Reset",
    "TriggerMessage",
    "ChangeAvailability",
    "UnlockConnector",
    "DataTransfer",
    "SetNetworkProfile",
    "ClearCache",
    "SendLocalList",
    "GetLocalListVersion",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "GetTransactionStatus",
    "UpdateFirmware",
    "InstallCertificate",
    "GetInstalledCertificateIds",
    "DeleteCertificate",
    "CustomerInformation",
    "GetLog",
    "SetChargingProfile",
    "GetChargingProfiles",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "ReserveNow",
    "CancelReservation",
    "CostUpdated",
    "SetDisplayMessage",
    "GetDisplayMessages",
    "ClearDisplayMessage",
    "CertificateSigned",
    "SetVariableMonitoring",
    "ClearVariableMonitoring",
    "SetMonitoringLevel",
    "SetMonitoringBase",
    "GetMonitoringReport",
)

KIND_NAMES = ("STR", "DT", "ENUM", "INT", "NUM", "BOOL", "OBJ", "OPEN", "ARR", "ANY")
STR, DT, ENUM, INT, NUM, BOOL, OBJ, OPEN, ARR, ANY = range(len(KIND_NAMES))

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "lib" / "ocpp_schema.py"

# Keywords that carry no constraint. additionalItems only matters when items is a list of
# schemas, which OCPP never uses, so with a single items schema it is ignored too.
_IGNORED = frozenset(("description", "javaType", "comment", "$schema", "default", "$id"))


class SchemaUnsupported(Exception):
    pass


def schema_dir():
    """The directory of the official OCPP 2.0.1 JSON schemas in the installed ocpp package."""
    return importlib.resources.files("ocpp.v201").joinpath("schemas")


def load(name):
    """The official JSON schema of a message, e.g. load("GetVariablesRequest")."""
    return json.loads(schema_dir().joinpath(name + ".json").read_text(encoding="utf-8"))


def all_actions():
    """Every OCPP 2.0.1 action name, sorted: the <Action>Request.json files."""
    return sorted(
        p.name[: -len("Request.json")]
        for p in schema_dir().iterdir()
        if p.name.endswith("Request.json")
    )


def all_messages():
    """Every message name with a schema, sorted."""
    return sorted(p.name[:-5] for p in schema_dir().iterdir() if p.name.endswith(".json"))


def selected_messages():
    """The message names that get a table, sorted."""
    names = [a + "Response" for a in CS_TO_CSMS] + [a + "Request" for a in CSMS_TO_CS]
    return sorted(names)


class _Item:
    """One emitted module-level tuple: an object table or an enum value tuple."""

    def __init__(self, serial, is_enum, body, children):
        self.serial = serial  # first-seen order, only to break name clashes
        self.is_enum = is_enum
        self.body = body  # enum: tuple of str; object: tuple of (name, code, arg) triples
        self.children = children  # object items this one refers to
        self.sources = set()  # definition or message names this item stands for
        self.var = None


class _Compiler:
    def __init__(self):
        self.items = {}  # content key -> _Item

    def _intern(self, key, is_enum, body, children, source):
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = _Item(len(self.items), is_enum, body, children)
        item.sources.add(source)
        return item

    def message(self, name):
        schema = load(name)
        node = dict(schema)
        defs = node.pop("definitions", {})
        if node.get("additionalProperties", True) is not False:
            raise SchemaUnsupported(name + ": payload object allows other properties")
        return self._object(node, defs, name, name, ())

    def _resolve(self, node, defs, where, stack):
        """(kind, arg) for a property or item schema."""
        if "$ref" in node:
            extra = set(node) - {"$ref"} - _IGNORED
            if extra:
                raise SchemaUnsupported("%s: keywords beside $ref: %s" % (where, sorted(extra)))
            ref = node["$ref"]
            prefix = "#/definitions/"
            if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
                raise SchemaUnsupported("%s: unresolvable $ref %s" % (where, ref))
            dname = ref[len(prefix) :]
            if dname in stack:
                raise SchemaUnsupported("%s: recursive definition %s" % (where, dname))
            return self._node(defs[dname], defs, dname, dname, stack + (dname,))
        return self._node(node, defs, where, None, stack)

    def _node(self, node, defs, where, source, stack):
        keys = set(node) - _IGNORED
        t = node.get("type")

        def only(*allowed):
            extra = keys - {"type"} - set(allowed)
            if extra:
                raise SchemaUnsupported("%s: unsupported keywords %s" % (where, sorted(extra)))

        if t is None:
            if keys:
                raise SchemaUnsupported("%s: schema without type: %s" % (where, sorted(keys)))
            return ANY, None
        if t == "string":
            if "enum" in node:
                only("enum", "additionalProperties")
                values = tuple(node["enum"])
                if not values or not all(isinstance(v, str) for v in values):
                    raise SchemaUnsupported("%s: enum values must be strings" % where)
                item = self._intern(("E", values), True, values, (), source or where)
                return ENUM, item
            if "format" in node:
                only("format")
                if node["format"] != "date-time":
                    raise SchemaUnsupported("%s: format %s" % (where, node["format"]))
                return DT, None
            only("maxLength")
            return STR, node.get("maxLength")
        if t in ("integer", "number"):
            only("minimum", "maximum")
            lo, hi = _bound(node.get("minimum")), _bound(node.get("maximum"))
            return (INT if t == "integer" else NUM), (None if lo is hi is None else (lo, hi))
        if t == "boolean":
            only()
            return BOOL, None
        if t == "array":
            only("items", "minItems", "maxItems", "additionalItems")
            items = node.get("items")
            if not isinstance(items, dict):
                raise SchemaUnsupported("%s: items must be one schema" % where)
            kind, arg = self._resolve(items, defs, where + "[]", stack)
            return ARR, (node.get("minItems", 0), node.get("maxItems"), kind, arg)
        if t == "object":
            only("properties", "required", "additionalProperties")
            closed = node.get("additionalProperties", True)
            if closed not in (True, False):
                raise SchemaUnsupported("%s: additionalProperties must be a boolean" % where)
            item = self._object(node, defs, where, source or where, stack)
            return (OPEN if closed is True else OBJ), item
        raise SchemaUnsupported("%s: type %r" % (where, t))

    def _object(self, node, defs, where, source, stack):
        props = node.get("properties", {})
        required = node.get("required", [])
        missing = [r for r in required if r not in props]
        if missing:
            raise SchemaUnsupported("%s: required but not a property: %s" % (where, missing))
        entries = []
        children = []
        for pname, pnode in props.items():
            kind, arg = self._resolve(pnode, defs, where + "." + pname, stack)
            entries.append((pname, kind * 2 + (pname in required), arg))
            for sub in (arg, arg[3] if kind == ARR else None):
                if isinstance(sub, _Item) and not sub.is_enum:
                    children.append(sub)
        body = tuple(entries)
        key = ("O", tuple((n, c, _key(a)) for n, c, a in body))
        return self._intern(key, False, body, tuple(children), source)


def _bound(v):
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _key(arg):
    if isinstance(arg, _Item):
        return ("I", arg.serial)
    if isinstance(arg, tuple):
        return tuple(_key(a) for a in arg)
    return arg


def _strip(name):
    return name[:-4] if name.endswith("Type") and len(name) > 4 else name


def _name_items(items):
    """Give every item a variable name: _<definition without Type>, or _<message>."""
    taken = {}
    for item in sorted(items, key=lambda i: i.serial):
        base = "_" + re.sub(r"\W", "_", _strip(min(item.sources)))
        n = taken.get(base, 0) + 1
        taken[base] = n
        item.var = base if n == 1 else "%s_%d" % (base, n)


def _level(item, memo):
    if item.var not in memo:
        memo[item.var] = 1 + max((_level(c, memo) for c in item.children), default=-1)
    return memo[item.var]


def _lit(v):
    if isinstance(v, _Item):
        return v.var
    if isinstance(v, tuple):
        if len(v) == 1:
            return "(" + _lit(v[0]) + ",)"
        return "(" + ", ".join(_lit(x) for x in v) + ")"
    if isinstance(v, str):
        return json.dumps(v)  # a valid Python literal too, deterministic quoting
    return repr(v)


def _wrap_tuple(values, indent, width=99):
    """A tuple literal, broken into lines of at most width columns where needed."""
    one = _lit(tuple(values))
    if len(one) + indent <= width:
        return one
    pad = " " * (indent + 4)
    lines, line = [], pad
    for v in values:
        s = _lit(v) + ","
        if line != pad and len(line) + 1 + len(s) > width:
            lines.append(line)
            line = pad
        line += (" " if line != pad else "") + s
    lines.append(line)
    return "(\n" + "\n".join(lines) + "\n" + " " * indent + ")"


def _header():
    doc = __doc__
    fmt = doc[doc.index("Table format") :].rstrip("\n").split("\n")
    lines = [
        "# ocpp_schema: compact OCPP 2.0.1 validation tables for lib/schema.py.",
        "# generated by tools/gen_schema.py, do not edit.",
        "# Made from the official OCPP 2.0.1 JSON schemas (MIT licence for this file); to change",
        "# the selection of messages, edit the lists in tools/gen_schema.py and run it again.",
        "#",
    ]
    lines += [("# " + x).rstrip() for x in fmt]
    return "\n".join(lines) + "\n"


def generate(messages=None):
    """The source text of lib/ocpp_schema.py for the given message names (default: selection)."""
    messages = sorted(selected_messages() if messages is None else messages)
    comp = _Compiler()
    roots = {m: comp.message(m) for m in messages}
    items = list(comp.items.values())
    _name_items(items)
    out = [_header()]
    out.append("from micropython import const")
    out.append("")
    out.append("ACTIONS = " + _wrap_tuple(all_actions(), 0))
    out.append("")
    enums = sorted((i for i in items if i.is_enum), key=lambda i: i.var)
    for item in enums:
        out.append("# " + ", ".join(sorted(item.sources)))
        out.append("%s = const(%s)" % (item.var, _wrap_tuple(item.body, 0)))
    out.append("")
    memo = {}
    objects = sorted((i for i in items if not i.is_enum), key=lambda i: (_level(i, memo), i.var))
    for item in objects:
        names = [e[0] for e in item.body]
        codes = [e[1] for e in item.body]
        args = [e[2] for e in item.body]
        out.append("# " + ", ".join(sorted(item.sources)))
        out.append("%s = const(" % item.var)
        out.append("    (")
        for part in (names, codes, args):
            out.append("        " + _wrap_tuple(part, 8) + ",")
        out.append("    )")
        out.append(")")
    out.append("")
    out.append("NAMES = " + _wrap_tuple(messages, 0))
    out.append("TABLES = (")
    for m in messages:
        out.append("    %s," % roots[m].var)
    out.append(")")
    out.append("")
    out.append("")
    out.append("def table(name):")
    out.append('    """The object table of message `name`, or None (a message not validated)."""')
    out.append("    for i in range(len(NAMES)):")
    out.append("        if NAMES[i] == name:")
    out.append("            return TABLES[i]")
    out.append("    return None")
    return "\n".join(out) + "\n"


def main(argv):
    check = "--check" in argv[1:]
    unknown = [a for a in argv[1:] if a != "--check"]
    if unknown:
        print("usage: python tools/gen_schema.py [--check]", file=sys.stderr)
        return 2
    text = generate()
    if check:
        try:
            current = OUTPUT.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            print(
                "%s is stale: run `python tools/gen_schema.py` and commit it"
                % OUTPUT.relative_to(ROOT),
                file=sys.stderr,
            )
            return 1
        print("%s is up to date" % OUTPUT.relative_to(ROOT))
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print("wrote %s (%d messages)" % (OUTPUT.relative_to(ROOT), len(selected_messages())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
