# customer_information: OCPP block N09/N10: CustomerInformation, what the station holds about
# one customer, reported in NotifyCustomerInformation parts and cleared on request.
# MIT licence.
"""CustomerInformation (N09 report, N10 clear).

The customer is named by exactly one of idToken, customerCertificate, customerIdentifier;
anything else is answered Invalid (N09.FR.09). The station keeps no customer certificates and
no customer identifiers, so a request naming either is Accepted and finds "No data" (the
station did what was asked: it looked, and holds nothing of that customer; Rejected would
say it cannot serve such requests at all). For an idToken the station holds:

- the authorization cache entry (firmware/auth_cache.py), expired or not;
- the local list entry, when the local list block is loaded (it is whenever a list is on
  flash); the list is the CSMS's and is never cleared here;
- the open transaction the token authorizes on an EVSE, with its TxEnded samples so far;
- the TransactionEvents still queued for the CSMS (firmware/queue.py) of the transactions
  the token started or stopped, with the TxEnded samples of a queued Ended. (A transaction
  is known as the token's by an event naming it: once those were delivered and the
  transaction ended, what is left of it in the queue is no longer linked to the token.)

`clear` removes the cache entry: everything else is needed to deliver a transaction's
messages (the open transaction, the queue) or is the CSMS's (the local list), and stays.
With `report` the parts that follow tell what remains; with `clear` alone one part tells
what was cleared; with neither one part says "No data" (after Accepted the CSMS always gets
at least one part).

The text of `data`: lines separated by "\\n", never a token value or any other secret (the
CSMS knows whom it asked about; requestId links the parts to the request):

    cache: <status>[, expires <time>][, EVSE <id> <id>][, priority <n>][, in a group],
        last used <time>, <n> uses
    local list v<version>: <status>[, expires <time>][, EVSE ...][, priority <n>][, in a group]
    open transaction <id> on EVSE <n>, started <time>
    queued TransactionEvent <eventType> <seqNo> of transaction <id>, <timestamp>,
        <triggerReason>[, <stoppedReason>]
      sample <timestamp>: <measurand>[ <phase>] <value> <unit>, ... (a TxEnded sample)
    cleared: cache entry            (clear without report)

(one line each; wrapped here). A part holds at most 512 characters of whole lines; a line
longer than that is cut over parts. The report is made a line at a time while the parts go
out, so a large one (hundreds of queued events, 48 TxEnded samples) never sits in RAM.
"""

import asyncio

from micropython import const

import jsonwire
import log
import ocppj
import rfc3339
from firmware.auth_cache import token_key
from firmware.queue import ENDED, TRANSACTION_EVENT

_TAG = const("customer")
_PART = const(512)  # characters of `data` per NotifyCustomerInformation part (schema)
_NO_DATA = const("No data")
_ACCEPTED = const("Accepted")
_IDS = const(("idToken", "customerCertificate", "customerIdentifier"))


def _info_text(info):
    """What an idTokenInfo says, without any token value."""
    s = info.get("status", "?")
    exp = info.get("cacheExpiryDateTime")
    if exp:
        s += ", expires " + exp
    ids = info.get("evseId")
    if ids:
        s += ", EVSE " + " ".join([str(i) for i in ids])
    prio = info.get("chargingPriority")
    if prio is not None:
        s += ", priority %d" % prio
    if info.get("groupIdToken"):
        s += ", in a group"
    return s


def _num(v):
    return jsonwire.num_text(v) if type(v) is float else str(v)


def sample_line(mv):
    """The line of one meterValue entry (a TxEnded sample)."""
    out = []
    for sv in mv.get("sampledValue", ()):
        t = sv.get("measurand", "Energy.Active.Import.Register")
        if "phase" in sv:
            t += " " + sv["phase"]
        t += " " + _num(sv.get("value"))
        unit = sv.get("unitOfMeasure")
        if unit and "unit" in unit:
            t += " " + unit["unit"]
        out.append(t)
    return "  sample %s: %s" % (mv.get("timestamp", "?"), ", ".join(out))


class CustomerInformation:
    def __init__(self, router, session, clock, cache, local_list, bays, queue, spawn):
        """cache: the authorization cache; local_list(): the local list block or None; bays:
        the transactions block's Bays; queue: the message queue (read only)."""
        self.session = session
        self.clock = clock
        self.cache = cache
        self._local_list = local_list
        self.bays = bays
        self.queue = queue
        self.spawn = spawn
        self._busy = None  # the request whose parts are on their way (its payload), or None
        self._cleared = None  # what the last handled request cleared, for its after-hook
        router.on("CustomerInformation", self.on_customer_information, self.after)

    # -- the request (N09, N10) -------------------------------------------------------------

    def on_customer_information(self, req):
        n = 0
        for k in _IDS:
            if k in req:
                n += 1
        if n != 1:
            return ocppj.answer("Invalid")  # N09.FR.09
        if self._busy is not None:
            # One at a time keeps the memory bounded; the CSMS asks again after the last part
            # (from the moment that part is made: see _send).
            return ocppj.answer("Rejected", "RequestInProgress")
        cleared = []
        tok = req.get("idToken")
        if req["clear"] and tok is not None:
            try:
                if self.cache.remove(token_key(tok)):
                    cleared.append("cache entry")
            except OSError as e:
                log.error(_TAG, "cache entry not cleared: %r" % (e,))
                return ocppj.answer("Rejected", "InternalError")
        self._cleared = cleared
        return ocppj.answer(_ACCEPTED)

    def after(self, req, resp):
        cleared, self._cleared = self._cleared, None
        if resp["status"] != _ACCEPTED:
            return
        self._busy = req
        self.spawn(self._send(req, cleared))

    # -- the parts --------------------------------------------------------------------------

    def lines(self, req, cleared):
        """The lines of the parts answering `req` (a generator). None now and then stands
        for no line: a queued event read from flash that is not this customer's, after
        which the sender gives the loop a turn (hundreds of reads in a row would hold it)."""
        tok = req.get("idToken")
        if req["report"]:
            if tok is not None:
                yield from self._held(token_key(tok))
        elif cleared:
            yield "cleared: " + ", ".join(cleared)

    def _held(self, key):
        rec = self.cache.entry(key)
        if rec is not None:
            yield "cache: %s, last used %s, %d uses" % (
                _info_text(rec[0]),
                rfc3339.format(rec[1]),
                rec[2],
            )
        ll = self._local_list()
        if ll is not None:
            info = ll.entries.get(key)
            if info is not None:
                yield "local list v%d: %s" % (ll.version, _info_text(info))
        mine = []  # ids of this customer's transactions
        for b in self.bays:
            tx = b.tx
            if tx is None or b.token is None or token_key(b.token) != key:
                continue
            mine.append(tx["id"])
            yield "open transaction %s on EVSE %d, started %s" % (
                tx["id"],
                b.n,
                rfc3339.format(tx["t0"]),
            )
            for mv in b.samples:
                yield sample_line(mv)
        queue = self.queue
        for seq in queue.seqs(TRANSACTION_EVENT):
            m = queue.read(seq)  # None: delivered meanwhile, or unreadable
            if m is None:
                yield None
                continue
            p, tx_id = m[1], m[2]
            t = p.get("idToken")
            if tx_id not in mine:
                if type(t) is not dict or _key(t) != key:
                    yield None  # another customer's: no line, but a turn for the loop
                    continue
                mine.append(tx_id)  # its first event naming the token (Started, mostly)
            info = p.get("transactionInfo", {})
            line = "queued TransactionEvent %s %s of transaction %s, %s, %s" % (
                p.get("eventType"),
                p.get("seqNo"),
                tx_id,
                p.get("timestamp"),
                p.get("triggerReason"),
            )
            if "stoppedReason" in info:
                line += ", " + info["stoppedReason"]
            yield line
            if p.get("eventType") == ENDED:
                for mv in p.get("meterValue", ()):
                    yield sample_line(mv)

    async def _send(self, req, cleared):
        """Send the parts: whole lines, at most _PART characters each part. A part that fails
        (no answer, CALLERROR, offline) ends them: the CSMS can ask again."""
        rid = req["requestId"]
        seq = 0
        buf = ""
        try:
            for line in self.lines(req, cleared):
                while line:  # None: no line
                    room = _PART - len(buf) - (1 if buf else 0)
                    if len(line) <= room:
                        buf = buf + "\n" + line if buf else line
                        line = ""
                    elif buf:
                        await self._part(rid, seq, buf, True)  # the line starts the next
                        seq += 1
                        buf = ""
                    else:  # longer than a part: cut
                        await self._part(rid, seq, line[:_PART], True)
                        seq += 1
                        line = line[_PART:]
                await asyncio.sleep_ms(0)  # a long report does not hold the loop
            # The next request may come as soon as the CSMS has the last part (before our
            # call returns): this one is done now.
            self._busy = None
            await self._part(rid, seq, buf or _NO_DATA, False)
            log.info(_TAG, "request %d: %d parts" % (rid, seq + 1))
        except Exception as e:  # the link, the CSMS, the flash, memory: logged, no crash
            log.warn(_TAG, "request %d stopped at part %d: %r" % (rid, seq, e))
        finally:
            if self._busy is req:
                self._busy = None

    async def _part(self, rid, seq, data, tbc):
        await self.session.call(
            "NotifyCustomerInformation",
            {
                "data": data,
                "tbc": tbc,
                "seqNo": seq,
                "generatedAt": self.clock.iso(),
                "requestId": rid,
            },
        )


def _key(t):
    """token_key of an idToken read back from the queue (it may be damaged: None then)."""
    try:
        return token_key(t)
    except (KeyError, TypeError, AttributeError):
        return None
