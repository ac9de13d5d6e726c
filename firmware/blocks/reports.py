# reports: OCPP block B reports: GetBaseReport and GetReport, answered by NotifyReport parts.
# MIT licence.

import asyncio
import gc

from micropython import const

import log
import ocppj
from firmware.device_model import MAX_VALUE

_TAG = const("report")

# One NotifyReport part holds at most this many reportData items, and at most this many bytes
# of them serialised: with the frame around them (at most 166 bytes: message id, requestId,
# generatedAt, seqNo, tbc) a part stays within 4096 bytes, the BytesPerMessage we accept
# ourselves and the 4 KB the spec digest suggests; the CSMS announces no limit. An item is
# 250-450 bytes, about 300, so the two limits meet near 10 items, and 10 items hold 6-7 KB of
# heap (64-bit unix port) while the part is on its way. The longest possible item (a
# 2500-character value and a 1000-character valuesList) still fits, alone if need be; one
# larger still would go alone, over the budget. Bytes are counted as characters: text outside
# ASCII, which no declared value holds, would make a part a little longer.
_PART_ITEMS = const(10)
_PART_BYTES = const(3930)

ACCEPTED = "Accepted"
REJECTED = "Rejected"
NOT_SUPPORTED = "NotSupported"
EMPTY_RESULT_SET = "EmptyResultSet"

# A report already being sent: the new request is refused, not queued (one report at a time
# keeps the memory bounded; the CSMS asks again once the last part is out).
_BUSY = {"status": REJECTED, "statusInfo": {"reasonCode": "ReportInProgress"}}

# Declaration spec letters (see variables.py) and the names the wire uses for them.
_KINDS = const("sditboqm")
_DATA_TYPES = (
    "string",
    "decimal",
    "integer",
    "dateTime",
    "boolean",
    "OptionList",
    "SequenceList",
    "MemberList",
)
_MUTS = const("rwx")
_MUTABILITY = const(("ReadOnly", "ReadWrite", "WriteOnly"))

# Components without the variable a criterion names: a component that cannot be switched
# off or taken out of use is active, available and enabled; one that cannot report a
# problem has none to report.
_CRITERIA_DEFAULT = (("Active", True), ("Available", True), ("Enabled", True), ("Problem", False))

# The heap high-water mark of a report (logged; `make bench` reads it): MicroPython only.
if hasattr(gc, "mem_alloc"):
    _mem_alloc, _collect = gc.mem_alloc, gc.collect
else:  # CPython (host tests): no figure, and no full collection before every part
    _mem_alloc, _collect = (lambda: 0), (lambda: None)


def split_key(key):
    """(component name, evse id, connector id, component instance, variable name, variable
    instance) of a declaration key; absent parts are None."""
    comp, _, var = key.partition("/")
    comp, _, cinst = comp.partition(":")
    vname, _, vinst = var.partition(":")
    name, _, ids = comp.partition(".")
    evse = conn = None
    if ids:
        e, _, c = ids.partition(".")
        evse = int(e)
        if c:
            conn = int(c)
    return name, evse, conn, cinst or None, vname, vinst or None


def component_variable(key):
    """The OCPP (component, variable) of declaration `key`."""
    name, evse, conn, cinst, vname, vinst = split_key(key)
    comp = {"name": name}
    if evse is not None:
        comp["evse"] = {"id": evse} if conn is None else {"id": evse, "connectorId": conn}
    if cinst:
        comp["instance"] = cinst
    var = {"name": vname}
    if vinst:
        var["instance"] = vinst
    return comp, var


def report_data(dm, d):
    """The NotifyReport reportData item of declaration `d` (a WriteOnly value is left out)."""
    comp, var = component_variable(d[0])
    spec = d[1]
    kind, mut = spec[0], spec[1]
    constant = "=" in spec
    attr = {
        "type": "Actual",
        "mutability": _MUTABILITY[_MUTS.index(mut)],
        "persistent": mut != "r" or constant,
        "constant": constant,
    }
    if mut != "x":
        v = dm.get(d[0])
        attr["value"] = v if len(v) <= MAX_VALUE else v[:MAX_VALUE]
    chars = {"dataType": _DATA_TYPES[_KINDS.index(kind)], "supportsMonitoring": "~" in spec}
    lim = d[3]
    if lim:
        unit, lo, hi, values = lim
        if unit:
            chars["unit"] = unit
        if lo is not None and kind in "di":  # for strings it bounds the length: not reported
            chars["minLimit"] = lo
        if hi is not None:
            chars["maxLimit"] = hi  # for strings the spec defines it as the longest length
        if values:
            chars["valuesList"] = values
    return {
        "component": comp,
        "variable": var,
        "variableAttribute": [attr],
        "variableCharacteristics": chars,
    }


def json_len(x):
    """Length of `x` as compact JSON, counted without building the text (strings: characters,
    with quotes and backslashes escaped; control characters and text outside ASCII, which no
    declared value holds, are counted as one)."""
    t = type(x)
    if t is str:
        return len(x) + 2 + x.count('"') + x.count("\\")
    if t is bool:
        return 4 if x else 5
    if t is int:
        n = 1 if x >= 0 else 2
        x = -x if x < 0 else x
        while x >= 10:
            x //= 10
            n += 1
        return n
    if t is dict:
        n = 1 + len(x)  # braces, and a comma or the closing brace after each member
        for k in x:
            n += json_len(k) + 1 + json_len(x[k])
        return n + (1 if not x else 0)
    n = 1 + len(x)  # a list
    for v in x:
        n += json_len(v)
    return n + (1 if not x else 0)


def _eq(a, b):
    """Names compare case-insensitively (B06, B08); lower() only when the lengths agree."""
    return len(a) == len(b) and (a == b or a.lower() == b.lower())


def matches(cv, parts):
    """True when ComponentVariable filter `cv` selects the declaration split into `parts`.

    What the filter leaves out matches everything: no evse = all EVSEs, no connectorId = all
    connectors of the EVSE, no instance = all instances, no variable = all variables
    (B08.FR.22-25).
    """
    name, evse, conn, cinst, vname, vinst = parts
    c = cv["component"]
    if not _eq(c["name"], name):
        return False
    if "instance" in c and not (cinst and _eq(c["instance"], cinst)):
        return False
    e = c.get("evse")
    if e is not None:
        if evse != e["id"]:
            return False
        if "connectorId" in e and conn != e["connectorId"]:
            return False
    v = cv.get("variable")
    if v is None:
        return True
    if not _eq(v["name"], vname):
        return False
    return "instance" not in v or bool(vinst and _eq(v["instance"], vinst))


def _configuration(d):
    return d[1][1] != "r"


def _everything(d):
    return True


class Report:
    """One report on its way: which declarations it covers and how far it has got.

    `want(declaration)` selects the declarations; `i` is the index into the device model's
    declarations of the next one to look at, `seq` the seqNo of the next part.
    """

    def __init__(self, request_id, want):
        self.request_id = request_id
        self.want = want
        self.i = 0
        self.seq = 0


class Reports:
    def __init__(self, router, session, dm, clock):
        self.session = session
        self.dm = dm
        self.clock = clock
        self._task = None  # the task sending the current report, None while none is
        self._next = None  # the report just accepted, started by the after-hook
        self.peak_heap = None  # bytes above the idle heap at the worst moment of the last one
        router.on("GetBaseReport", self.on_get_base_report, self.after_report)
        router.on("GetReport", self.on_get_report, self.after_report)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- requests ---------------------------------------------------------------------------

    def on_get_base_report(self, req):
        base = req["reportBase"]
        if base == "SummaryInventory":
            return {"status": NOT_SUPPORTED}
        if self._task is not None:
            return _BUSY
        want = _configuration if base == "ConfigurationInventory" else _everything
        return self._accept(Report(req["requestId"], want))

    def on_get_report(self, req):
        cvs = req.get("componentVariable")
        dm = self.dm
        if cvs and len(cvs) > dm.get_int("DeviceDataCtrlr/ItemsPerMessage:GetReport"):
            raise ocppj.CallError(ocppj.OCCURRENCE_CONSTRAINT_VIOLATION, "ItemsPerMessage")
        if self.session.in_len > dm.get_int("DeviceDataCtrlr/BytesPerMessage:GetReport"):
            raise ocppj.CallError(ocppj.FORMAT_VIOLATION, "BytesPerMessage")
        if self._task is not None:
            return _BUSY
        criteria = req.get("componentCriteria")
        ok = self._meeting(criteria) if criteria else None

        def want(d):
            key = d[0]
            if ok is not None and key[: key.index("/")] not in ok:
                return False
            if not cvs:
                return True
            parts = split_key(key)
            for cv in cvs:
                if matches(cv, parts):
                    return True
            return False

        return self._accept(Report(req["requestId"], want))

    def _meeting(self, criteria):
        """The component keys (as declared) that meet any of `criteria`: their variable of
        that name is "true", or they have none and the criterion's default holds."""
        dm = self.dm
        seen = set()
        ok = set()
        for d in dm.declared:
            comp = d[0][: d[0].index("/")]
            if comp in seen:
                continue
            seen.add(comp)
            for name, default in _CRITERIA_DEFAULT:
                if name not in criteria:
                    continue
                try:
                    key = dm.decl(comp + "/" + name)[0]
                except KeyError:
                    met = default
                else:
                    met = dm.get(key) == "true"
                if met:
                    ok.add(comp)
                    break
        return ok

    def _accept(self, rep):
        if not self._skip(rep):
            return {"status": EMPTY_RESULT_SET}
        self._next = rep
        return {"status": ACCEPTED}

    def after_report(self, req, resp):
        rep, self._next = self._next, None
        if resp["status"] == ACCEPTED and rep is not None and self._task is None:
            self._task = asyncio.create_task(self._send(rep))

    # -- parts ------------------------------------------------------------------------------

    def _skip(self, rep):
        """Move `rep` to its next wanted declaration; False when none is left."""
        decls = self.dm.declared
        n = len(decls)
        while rep.i < n and not rep.want(decls[rep.i]):
            rep.i += 1
        return rep.i < n

    def next_part(self, rep):
        """The next NotifyReport payload of `rep`, or None when all was sent.

        Built from the declarations one item at a time: the report as a whole never exists
        in memory, only the part on its way.
        """
        decls = self.dm.declared
        items = []
        size = 0
        while len(items) < _PART_ITEMS and self._skip(rep):
            item = report_data(self.dm, decls[rep.i])
            n = json_len(item) + 1  # + the comma between items
            if items and size + n > _PART_BYTES:
                break  # it starts the next part (built again then)
            items.append(item)
            size += n
            rep.i += 1
        if not items:
            return None
        part = {
            "requestId": rep.request_id,
            "generatedAt": self.clock.iso(),
            "seqNo": rep.seq,
            "tbc": self._skip(rep),
            "reportData": items,
        }
        rep.seq += 1
        return part

    async def _send(self, rep):
        """Send the parts one by one. A part that fails (no answer, CALLERROR, offline) ends
        the report: the spec says nothing of resending, and the CSMS can ask again."""
        _collect()
        base = _mem_alloc()
        peak = 0
        try:
            while True:
                # Each part starts on a collected heap: the sample after it is what one part
                # costs (items, the serialised frame, the reply) over the idle heap.
                _collect()
                part = self.next_part(rep)
                if part is None:
                    break
                peak = max(peak, _mem_alloc() - base)
                try:
                    await self.session.call("NotifyReport", part)
                except MemoryError:
                    # No room to frame it now (a small heap, fragmented by other work):
                    # collect and try this part once more; a second failure ends the report.
                    _collect()
                    await self.session.call("NotifyReport", part)
                peak = max(peak, _mem_alloc() - base)
                part = None
            log.info(
                _TAG,
                "report %d sent in %d parts, heap peak +%d B" % (rep.request_id, rep.seq, peak),
            )
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "report %d stopped at part %d: %r" % (rep.request_id, rep.seq - 1, e))
        except MemoryError as e:
            part = None
            log.error(_TAG, "report %d stopped at part %d: %r" % (rep.request_id, rep.seq - 1, e))
        finally:
            self.peak_heap = peak
            self._task = None
