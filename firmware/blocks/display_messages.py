# display_messages: OCPP block O: SetDisplayMessage, GetDisplayMessages, ClearDisplayMessage,
# and which of the messages the display shows now. MIT licence.
"""Display messages (ocpp201-station.md §2.13).

Each message is a list [id, priority, format, content, state, start, end, transactionId,
language]: the first four are what the display needs, the times unix seconds (parsed once,
when set), the last four None when not given. All of them are the store document
"display_messages" (removed with the last one: at boot the block loads only when it is
there). The `display` component of a message is ignored: the station has one display.

SetDisplayMessage is checked in this order: no display (DisplayMessageCtrlr.Available false)
or DisplayMessageCtrlr.Enabled false -> Rejected; priority not in SupportedPriorities ->
NotSupportedPriority; format not in SupportedFormats (no HTML) -> NotSupportedMessageFormat;
a state other than the four of MessageStateEnumType -> NotSupportedState (the display model
knows all four, so only a request that skipped the schema gets it); a transactionId that is
not an ongoing transaction -> UnknownTransaction; endDateTime not after startDateTime and
now (the message could never show) -> Rejected InvalidValue; no room (capacity =
DisplayMessageCtrlr.DisplayMessages maxLimit, a message replaced by its id needs none) ->
Rejected OutOfStorage. Else Accepted, and the same id replaces the old message.

A message is gone for good once its endDateTime has passed or its transaction is no longer
ongoing: it can never show again, and it would keep a place. They are dropped (and the
document rewritten) when next looked at: `active`, the count, any message CALL.

Languages: OCPP 2.0.1 has no variable for the station's language (2.1 adds
DisplayMessageCtrlr.Language); ours has the same name, a language tag, empty by default.
While it is empty every message shows; else a message with a language shows only when its
primary subtag is Language's ("de-CH" shows for "de"); one without a language always shows.
"""

import asyncio

from micropython import const

import log
import ocppj
import rfc3339

_TAG = const("msgs")
_STORE = const("display_messages")
_CTRLR = const("DisplayMessageCtrlr/")
_STATES = const(("Charging", "Faulted", "Idle", "Unavailable"))
_PRIORITIES = const(("AlwaysFront", "InFront", "NormalCycle"))
_FORMATS = const(("ASCII", "HTML", "URI", "UTF8"))
# A NotifyDisplayMessages part holds at most _PART_ITEMS messages and, beyond its first one,
# at most _PART_CHARS characters of contents: with some 200 bytes of fields around each, a
# part stays near 2.5 KB even in a 3-byte UTF-8 script.
_PART_ITEMS = const(4)
_PART_CHARS = const(512)
# Fields of a message.
_ID = const(0)
_PRIO = const(1)
_FORMAT = const(2)
_CONTENT = const(3)
_STATE = const(4)
_START = const(5)
_END = const(6)
_TX = const(7)
_LANG = const(8)
_FIELDS = const(9)


def _opt(v, t):
    return v is None or type(v) is t


def _whole(m):
    """A message as this block writes it (it may come from a damaged flash)."""
    return (
        type(m) is list
        and len(m) == _FIELDS
        and type(m[_ID]) is int
        and m[_PRIO] in _PRIORITIES
        and m[_FORMAT] in _FORMATS
        and type(m[_CONTENT]) is str
        and (m[_STATE] is None or m[_STATE] in _STATES)
        and _opt(m[_START], int)
        and _opt(m[_END], int)
        and _opt(m[_TX], str)
        and _opt(m[_LANG], str)
    )


def _primary(tag):
    """The primary subtag of a language tag, lower case ("de-CH" -> "de")."""
    for sep in "-_":
        i = tag.find(sep)
        if i >= 0:
            tag = tag[:i]
    return tag.lower()


def _info(m):
    """The MessageInfoType of message `m`: the fields it was set with."""
    info = {"id": m[_ID], "priority": m[_PRIO]}
    if m[_STATE] is not None:
        info["state"] = m[_STATE]
    if m[_START] is not None:
        info["startDateTime"] = rfc3339.format(m[_START])
    if m[_END] is not None:
        info["endDateTime"] = rfc3339.format(m[_END])
    if m[_TX] is not None:
        info["transactionId"] = m[_TX]
    content = {"format": m[_FORMAT]}
    if m[_LANG] is not None:
        content["language"] = m[_LANG]
    content["content"] = m[_CONTENT]
    info["message"] = content
    return info


class DisplayMessages:
    def __init__(self, router, session, dm, store, clock, transactions, spawn, display):
        """display: the station's display model, or None without a display (every
        SetDisplayMessage is Rejected then)."""
        self.session = session
        self.dm = dm
        self.store = store
        self.clock = clock
        self.txs = transactions
        self.spawn = spawn
        self.available = display is not None and display.driver is not None
        self.capacity = dm.decl(_CTRLR + "DisplayMessages")[3][2]
        self.version = 0  # counts the changes: the display model may look at it to redraw
        self._found = None  # what the last GetDisplayMessages found, for its after-hook
        items = store.load(_STORE) or []
        self.items = [m for m in items if _whole(m)] if type(items) is list else []
        if len(self.items) != (len(items) if type(items) is list else -1):
            log.error(_TAG, "damaged display messages dropped: %r" % (items,))
            self._save(self.items)
        dm.provide(_CTRLR + "DisplayMessages", self._count)
        router.on("SetDisplayMessage", self.on_set)
        router.on("GetDisplayMessages", self.on_get, self._after_get)
        router.on("ClearDisplayMessage", self.on_clear)
        if display is not None:
            display.messages = self  # it asks `active`

    # -- what the display shows -------------------------------------------------------------

    def active(self, now, state):
        """The messages to show at `now` (unix s) while the station is in `state` (Charging,
        Faulted, Idle or Unavailable), in display order, as (id, priority, format, content):
        the newest AlwaysFront one alone, else the InFront ones, then the NormalCycle ones.
        It may rewrite the document (messages gone for good): call it from the display's
        task, not the safety loop."""
        self._prune(now)
        if not self.dm.setting(_CTRLR + "Enabled", True):
            return []
        want = _primary(self.dm.setting(_CTRLR + "Language", ""))
        front = None
        shown = []
        for prio in _PRIORITIES:
            for m in self.items:
                if m[_PRIO] != prio:
                    continue
                if m[_START] is not None and now < m[_START]:
                    continue
                if m[_STATE] is not None and m[_STATE] != state:
                    continue
                if want and m[_LANG] and _primary(m[_LANG]) != want:
                    continue
                if prio == "AlwaysFront":
                    front = m  # the last one set is the newest
                else:
                    shown.append((m[_ID], prio, m[_FORMAT], m[_CONTENT]))
            if front is not None:
                return [(front[_ID], front[_PRIO], front[_FORMAT], front[_CONTENT])]
        return shown

    def _ongoing(self, tx_id):
        for b in self.txs.bays:
            if b.tx_id == tx_id:
                return True
        return False

    def _prune(self, now=None):
        """Drop the messages gone for good: past their end, or of a transaction that is no
        longer ongoing."""
        if now is None:
            now = self.clock.now()
        for m in self.items:  # asked each second: a new list only when one is gone
            if (m[_END] is not None and now >= m[_END]) or (
                m[_TX] is not None and not self._ongoing(m[_TX])
            ):
                break
        else:
            return
        keep = [
            m
            for m in self.items
            if (m[_END] is None or now < m[_END]) and (m[_TX] is None or self._ongoing(m[_TX]))
        ]
        if len(keep) != len(self.items):
            log.info(_TAG, "messages ended: %d" % (len(self.items) - len(keep)))
            self._save(keep)
            self.items = keep
            self.version += 1

    def _count(self):
        """DisplayMessageCtrlr.DisplayMessages: how many messages are set."""
        self._prune()
        return str(len(self.items))

    # -- SetDisplayMessage, GetDisplayMessages, ClearDisplayMessage (O01-O05) -------------

    def on_set(self, req):
        m = req["message"]
        dm = self.dm
        if not self.available:
            return ocppj.answer("Rejected", "UnsupportedRequest")
        if not dm.setting(_CTRLR + "Enabled", True):
            return ocppj.answer("Rejected", "NotEnabled")
        if m["priority"] not in dm.get(_CTRLR + "SupportedPriorities").split(","):
            return ocppj.answer("NotSupportedPriority")
        content = m["message"]
        if content["format"] not in dm.get(_CTRLR + "SupportedFormats").split(","):
            return ocppj.answer("NotSupportedMessageFormat")
        state = m.get("state")
        if state is not None and state not in _STATES:
            return ocppj.answer("NotSupportedState")
        tx_id = m.get("transactionId")
        if tx_id is not None and not self._ongoing(tx_id):
            return ocppj.answer("UnknownTransaction")
        now = self.clock.now()
        try:
            start = m.get("startDateTime")
            start = None if start is None else rfc3339.parse(start)
            end = m.get("endDateTime")
            end = None if end is None else rfc3339.parse(end)
        except ValueError:
            return ocppj.answer("Rejected", "InvalidValue")
        if end is not None and (end <= now or (start is not None and end <= start)):
            return ocppj.answer("Rejected", "InvalidValue")  # it could never show
        self._prune(now)
        mid = m["id"]
        items = [x for x in self.items if x[_ID] != mid]  # the same id is replaced
        if len(items) >= self.capacity:
            return ocppj.answer("Rejected", "OutOfStorage")
        items.append(
            [
                mid,
                m["priority"],
                content["format"],
                content["content"],
                state,
                start,
                end,
                tx_id,
                content.get("language"),
            ]
        )
        self._save(items)  # before the change: a flash that fails leaves it as it was
        self.items = items
        self.version += 1
        log.info(_TAG, "message %d set (%s)" % (mid, m["priority"]))
        return ocppj.answer("Accepted")

    def on_get(self, req):
        self._prune()
        ids = req.get("id")
        prio = req.get("priority")
        state = req.get("state")
        found = [
            m
            for m in self.items
            if (ids is None or m[_ID] in ids)
            and (prio is None or m[_PRIO] == prio)
            and (state is None or m[_STATE] == state)
        ]
        if not found:
            return ocppj.answer("Unknown")
        self._found = found
        return ocppj.answer("Accepted")

    def _after_get(self, req, resp):
        found, self._found = self._found, None
        if resp["status"] == "Accepted":
            self.spawn(self._send(req["requestId"], found))

    async def _send(self, rid, found):
        """NotifyDisplayMessages parts of the messages `found` (tbc on all but the last). A
        part that fails ends them: the CSMS can ask again."""
        i = 0
        n = len(found)
        try:
            while i < n:
                part = []
                chars = 0
                while i < n and len(part) < _PART_ITEMS:
                    c = len(found[i][_CONTENT])
                    if part and chars + c > _PART_CHARS:
                        break
                    part.append(_info(found[i]))
                    chars += c
                    i += 1
                await self.session.call(
                    "NotifyDisplayMessages",
                    {"requestId": rid, "messageInfo": part, "tbc": i < n},
                )
                part = None
                await asyncio.sleep_ms(0)
        except Exception as e:  # the link, the CSMS, memory: logged, no crash
            log.warn(_TAG, "request %d stopped after %d messages: %r" % (rid, i, e))

    def on_clear(self, req):
        mid = req["id"]
        items = [m for m in self.items if m[_ID] != mid]
        if len(items) == len(self.items):
            return ocppj.answer("Unknown")
        self._save(items)
        self.items = items
        self.version += 1
        log.info(_TAG, "message %d cleared" % mid)
        return ocppj.answer("Accepted")

    def _save(self, items):
        if items:
            self.store.save(_STORE, items)
        else:
            self.store.remove(_STORE)
