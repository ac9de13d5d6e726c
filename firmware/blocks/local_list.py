# local_list: OCPP block D, the local authorization list: SendLocalList (Full, Differential)
# and GetLocalListVersion, the list and its version persisted together. MIT licence.

from micropython import const

import log
import ocppj
from firmware.auth_cache import expiry, token_key, trim

_STORE = "local_list"  # store document: {"version": n, "list": {token key: idTokenInfo}}
_TAG = const("locallist")
_ENABLED = const("LocalAuthListCtrlr/Enabled")
_ENTRIES = const("LocalAuthListCtrlr/Entries")
_ITEMS = const("LocalAuthListCtrlr/ItemsPerMessage")
_BYTES = const("LocalAuthListCtrlr/BytesPerMessage")

_ACCEPTED = {"status": "Accepted"}
_FAILED = const("Failed")
_MISMATCH = const("VersionMismatch")


class LocalList:
    """The CSMS's list of tokens with their idTokenInfo, consulted before the cache.

    `version` is 0 while there is no list. The whole list lives in RAM (at most the maxLimit
    of LocalAuthListCtrlr.Entries tokens, each with the trimmed idTokenInfo the cache keeps)
    and is rewritten on flash, atomically with its version, only when SendLocalList changes it.
    An update that fails changes nothing: it is built on a copy and swapped in when valid.
    """

    def __init__(self, router, session, dm, store, clock):
        self.session = session
        self.dm = dm
        self.store = store
        self.clock = clock
        self.capacity = dm.decl(_ENTRIES)[3][2]  # entries: maxLimit of Entries
        self.version = 0
        self.entries = {}
        doc = store.load(_STORE)
        if doc is not None:
            if _valid(doc):
                self.version = doc["version"]
                self.entries = doc["list"]
            else:
                log.error(_TAG, "stored list unreadable, starting without one")
        dm.provide(_ENTRIES, lambda: str(len(self.entries)))
        router.on("SendLocalList", self.on_send_local_list)
        router.on("GetLocalListVersion", self.on_get_local_list_version)

    @property
    def enabled(self):
        return self.dm.get_bool(_ENABLED)

    def get(self, key):
        """The idTokenInfo listed for token key `key` (see auth_cache.token_key), or None when
        absent or the list is disabled. An entry past its cacheExpiryDateTime reads as status
        Expired: it stays known, but it no longer authorizes."""
        if not self.enabled:
            return None
        info = self.entries.get(key)
        if info is None:
            return None
        exp = expiry(info)
        if exp is not None and self.clock.now() >= exp:
            info = dict(info)
            info["status"] = "Expired"
        return info

    # -- GetLocalListVersion (D02) ----------------------------------------------------------

    def on_get_local_list_version(self, req):
        # A disabled list is no list (D02): 0, though the stored one comes back when enabled.
        return {"versionNumber": self.version if self.enabled else 0}

    # -- SendLocalList (D01) ----------------------------------------------------------------

    def on_send_local_list(self, req):
        items = req.get("localAuthorizationList", ())
        if len(items) > self.dm.get_int(_ITEMS):
            raise ocppj.CallError(ocppj.OCCURRENCE_CONSTRAINT_VIOLATION, "ItemsPerMessage")
        if self.session.in_len > self.dm.get_int(_BYTES):
            raise ocppj.CallError(ocppj.FORMAT_VIOLATION, "BytesPerMessage")
        if not self.enabled:
            return ocppj.answer(_FAILED, "NotEnabled")
        version = req["versionNumber"]
        full = req["updateType"] == "Full"
        if version <= 0:
            return ocppj.answer(_FAILED, "InvalidValue")
        if not full and version <= self.version:
            return ocppj.answer(_MISMATCH)
        new = {} if full else dict(self.entries)
        seen = set()
        for item in items:
            key = token_key(item["idToken"])
            if key in seen:
                return ocppj.answer(_FAILED, "InvalidValue")  # the same token twice: ambiguous
            seen.add(key)
            info = item.get("idTokenInfo")
            if info is not None:
                new[key] = trim(info)
            elif full:
                return ocppj.answer(_FAILED, "InvalidValue")  # a full list names every status
            else:
                new.pop(key, None)
        if len(new) > self.capacity:
            log.warn(_TAG, "%d entries do not fit in %d" % (len(new), self.capacity))
            return ocppj.answer(_FAILED)
        self.store.save(_STORE, {"version": version, "list": new})
        self.version = version
        self.entries = new
        log.info(_TAG, "version %d, %d entries (%s)" % (version, len(new), req["updateType"]))
        return _ACCEPTED


def _valid(doc):
    return (
        type(doc) is dict
        and type(doc.get("version")) is int
        and type(doc.get("list")) is dict
        and all(type(v) is dict and type(v.get("status")) is str for v in doc["list"].values())
    )
