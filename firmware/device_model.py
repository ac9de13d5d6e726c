# device_model: OCPP components and variables: lookup, typed values, checks, persistence.
# MIT licence.

from micropython import const

import log
import rfc3339
from firmware.variables import Declarations

_STORE = const("variables")  # store document: {key: value} for every persisted value
MAX_VALUE = 2500  # longest value GetVariables may return (the schema's maxLength)

ACCEPTED = "Accepted"
REJECTED = "Rejected"
_REBOOT_REQUIRED = const("RebootRequired")
_UNKNOWN_COMPONENT = const("UnknownComponent")
_UNKNOWN_VARIABLE = const("UnknownVariable")


def key_of(component, variable):
    """The declaration key of an OCPP ComponentType/VariableType pair (case preserved)."""
    c = component["name"]
    evse = component.get("evse")
    if evse:
        c = "%s.%d" % (c, evse["id"])
        if "connectorId" in evse:
            c = "%s.%d" % (c, evse["connectorId"])
    if "instance" in component:
        c = c + ":" + component["instance"]
    v = variable["name"]
    if "instance" in variable:
        v = v + ":" + variable["instance"]
    return c + "/" + v


class DeviceModel:
    """The variables of `decls` (see variables.py) with their current values.

    Values are strings, as on the wire. ReadWrite and WriteOnly values persist in the store;
    ReadOnly ones come from the declaration, the board and the config file at every boot.
    Names are matched case-insensitively, as the spec asks.
    """

    def __init__(self, store, decls, factory=(), config=()):
        self.store = store
        # Every declaration in declaration order (reports walk it by index), a Declarations
        # (other sequences of rows are wrapped in one). Lookups scan it (Declarations.find): a
        # dict by key would cost some 800 bytes of RAM for lookups that only messages make,
        # never the charging loop.
        if type(decls) is not Declarations:
            decls = Declarations(tuple(decls))
        self.declared = decls
        # key (as declared) -> current value string, for the values that are not the
        # declared default (most are: a dict of every value would cost RAM for nothing)
        self.values = {}
        self._watch = {}  # key -> callback(value), or a tuple of them (see watch)
        self._dynamic = {}  # key -> () -> value string, for values read from elsewhere
        for key, value in factory:
            self._put(self.decl(key), value)
        saved = store.load(_STORE)
        self._apply_config(config, first_boot=saved is None)
        for key, value in (saved or {}).items():
            d = self._lookup(key)
            if d and d[1][1] != "r":
                self._put(d, value)
        if saved is None:
            self._save()

    def _apply_config(self, config, first_boot):
        """Factory settings from the config file: all on first boot, ReadOnly ones always."""
        for item in config:
            try:
                d = self.decl(key_of(item["component"], item["variable"]))
                value = str(item["attributeValue"])
            except (KeyError, TypeError, ValueError) as e:
                log.error("dm", "config variable %r ignored: %r" % (item, e))
                continue
            if first_boot or d[1][1] == "r":
                why = self.check(d, value)
                if why:
                    log.error("dm", "config %s: %s" % (d[0], why))
                else:
                    self._put(d, value)

    def _lookup(self, key):
        """The declaration of `key` (any case), or None."""
        return self.declared.find(key)

    def _has_component(self, comp):
        """True when some variable belongs to component key `comp` (any case)."""
        n = len(comp)
        low = comp.lower()
        for d in self.declared:
            k = d[0]
            if len(k) > n and k[n] == "/" and k[:n].lower() == low:
                return True
        return False

    def decl(self, key):
        d = self._lookup(key)
        if d is None:
            raise KeyError(key)
        return d

    def find(self, component, variable):
        """(status, declaration or None) for an OCPP component/variable pair."""
        key = key_of(component, variable)
        d = self._lookup(key)
        if d:
            return ACCEPTED, d
        if self._has_component(key[: key.index("/")]):
            return _UNKNOWN_VARIABLE, None
        return _UNKNOWN_COMPONENT, None

    # -- values -----------------------------------------------------------------------------

    # One function that serves many keys, `live(key)` -> value string, or None for a key it
    # does not serve (the availability block's states: no closure and key per EVSE, heap); a
    # class attribute until set.
    live = None

    def get(self, key):
        fn = self._dynamic.get(key)
        if fn:
            return fn()
        if self.live is not None:
            v = self.live(key)
            if v is not None:
                return v
        v = self.values.get(key)
        if v is not None:
            return v
        d = self.declared.find(key, False)
        if d is None:
            raise KeyError(key)
        return d[2]

    def get_int(self, key):
        return int(self.get(key))

    def get_bool(self, key):
        return self.get(key) == "true"

    def setting(self, key, default):
        """The value of `key` as the type of `default` (str, int or bool), or `default` when
        this device model does not declare `key` (an optional variable)."""
        try:
            v = self.get(key)
        except KeyError:
            return default
        if type(default) is bool:
            return v == "true"
        return int(v) if type(default) is int else v

    def provide(self, key, fn):
        """Serve `key` from `fn()` (a value kept elsewhere, such as the clock)."""
        self._dynamic[self.decl(key)[0]] = fn

    def watch(self, key, fn):
        """Call `fn(value)` after every change of `key` through `set`. One watcher is kept as
        itself, more as a tuple: no list per key (heap; watchers are set up once, at boot)."""
        k = self.decl(key)[0]
        old = self._watch.get(k)
        if old is None:
            self._watch[k] = fn
        else:
            self._watch[k] = (old + (fn,)) if type(old) is tuple else (old, fn)

    def set(self, key, value):
        """Store a value that `check` accepted; persist it; tell the watchers."""
        d = self.decl(key)
        self._put(d, value)
        if d[1][1] != "r":
            self._save()
        w = self._watch.get(d[0])
        if type(w) is tuple:
            for fn in w:
                fn(value)
        elif w is not None:
            w(value)
        return _REBOOT_REQUIRED if "!" in d[1] else ACCEPTED

    def _save(self):
        doc = {}
        for d in self.declared:
            if d[1][1] != "r":
                doc[d[0]] = self.values.get(d[0], d[2])
        self.store.save(_STORE, doc)

    def _put(self, d, value):
        if value == d[2]:
            self.values.pop(d[0], None)
        else:
            self.values[d[0]] = value

    # -- checks -----------------------------------------------------------------------------

    def check(self, d, value):
        """None when `value` suits declaration `d`, else why not (for logs, never the value)."""
        kind = d[1][0]
        lim = d[3] or (None, None, None, None)
        if len(value) > 1000:
            return "too long"
        if kind == "i":
            if not _is_int(value):
                return "not an integer"
            return _in_range(int(value), lim)
        if kind == "d":
            if not _is_decimal(value):
                return "not a decimal"
            return _in_range(float(value), lim)
        if kind == "b":
            return None if value in ("true", "false") else "not a boolean"
        if kind == "t":
            try:
                rfc3339.parse(value)
            except ValueError:
                return "not a dateTime"
            return None
        if kind == "s":
            return _in_range(len(value), lim)
        return _check_list(kind, value, lim[3])


def _is_int(s):
    digits = s[1:] if s[:1] in ("+", "-") else s
    return digits.isdigit() and len(digits) < 19


def _is_decimal(s):
    """Sign, digits, optionally a point and digits: no exponent, no inf or nan."""
    whole, _, frac = s.partition(".")
    return _is_int(whole) and (frac.isdigit() or not (frac or "." in s))


def _in_range(n, lim):
    if lim[1] is not None and n < lim[1]:
        return "below minimum"
    if lim[2] is not None and n > lim[2]:
        return "above maximum"
    return None


def _check_list(kind, value, values):
    allowed = values.split(",") if values else None
    items = value.split(",")
    if kind == "o":
        items = [value]
    for item in items:
        if not item or (allowed is not None and item not in allowed):
            return "not in valuesList"
    if kind == "m" and len(set(items)) != len(items):
        return "repeated member"
    return None
