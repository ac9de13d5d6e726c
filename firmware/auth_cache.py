# auth_cache: the authorization cache (OCPP C10, C11): the idTokenInfo the CSMS last gave for
# each token, kept on flash within AuthCacheCtrlr.Storage bytes and evicted by Policy.
# MIT licence.

import json

from micropython import const

import log
import rfc3339

# store document: {"v": 1, "e": {key: [idTokenInfo, last use s, uses]}}
_STORE = const("auth_cache")
_FORMAT = const(1)  # the document's format version ("v")
_FLUSH_S = const(60)  # last-use updates wait at most this long (or for the next change)
_ENTRY_OVERHEAD = const(4)  # a member's quotes, colon and comma around its key and record
_SEP = const((",", ":"))
_TAG = const("cache")

_ENABLED = const("AuthCacheCtrlr/Enabled")
_LIFETIME = const("AuthCacheCtrlr/LifeTime")
_POLICY = const("AuthCacheCtrlr/Policy")
_STORAGE = const("AuthCacheCtrlr/Storage")

# The idTokenInfo fields worth their bytes: what a decision (status, expiry, EVSE restriction)
# or the transactions block (group stop, priority) reads. A wallbox has no display, so
# personalMessage and the languages are dropped; customData is never kept.
_KEEP = const(("status", "cacheExpiryDateTime", "evseId", "groupIdToken", "chargingPriority"))

# Token types that never enter the cache: Central tokens come from the CSMS itself (remote
# start), NoAuthorization needs no answer.
_UNCACHED = const(("Central", "NoAuthorization"))


def token_key(id_token):
    """The identity of an IdTokenType: type and value, the value case-insensitive (the spec
    calls idToken case-insensitive). "ISO14443:aabbccdd"."""
    return id_token["type"] + ":" + id_token["idToken"].lower()


def trim(info):
    """The fields of idTokenInfo that are kept (a new dict)."""
    out = {}
    for k in _KEEP:
        if k in info:
            out[k] = info[k]
    return out


def expiry(info):
    """cacheExpiryDateTime of `info` as seconds since 1970, or None (absent or unreadable)."""
    s = info.get("cacheExpiryDateTime")
    if s is None:
        return None
    try:
        return rfc3339.parse(s)
    except ValueError:
        return None


def _size(key, rec):
    """Bytes an entry takes in the stored document, as compact JSON: what Storage counts."""
    return len(key) + len(json.dumps(rec, separators=_SEP)) + _ENTRY_OVERHEAD


class AuthCache:
    """Token key -> [idTokenInfo (trimmed), last use (s, wall clock), use count].

    Bounded: the compact JSON of all entries stays within the maxLimit of AuthCacheCtrlr.Storage
    (bytes, as the spec defines it); an insert that would overflow it first drops the expired
    entries, then the least recently used (Policy LRU) or least often used (LFU; ties go to the
    least recently used) until the new one fits. The Storage value is the bytes used now.

    Flash wear: a change (new token, other idTokenInfo, removal, clear, eviction) is written
    at once, atomically, with whatever else changed. A mere use (a lookup that authorizes, or
    the same answer again from the CSMS) only updates last use and count in RAM and marks the
    document dirty; `flush()` writes it once _FLUSH_S seconds have passed since the last write
    (the authorization block calls it every minute). So a station used all day writes at most
    once a minute, a normal one a few times a day; a power loss forgets at most a minute of
    use times, which can only make an entry expire that much sooner.

    The clock: times are the station's wall clock in seconds. A last use is never moved
    backwards (a board whose clock is not yet set after power-up would otherwise age entries
    by decades once it is).
    """

    def __init__(self, store, dm, clock):
        self.store = store
        self.dm = dm
        self.clock = clock
        self.capacity = dm.decl(_STORAGE)[3][2]  # bytes: maxLimit of AuthCacheCtrlr.Storage
        self.entries = {}
        self._dirty = False  # RAM holds use times not yet on flash
        self._saved_at = clock.now()
        doc = store.load(_STORE)
        if doc is not None:
            if type(doc) is dict and doc.get("v") == _FORMAT and type(doc.get("e")) is dict:
                for key, rec in doc["e"].items():
                    if _valid(rec):
                        self.entries[key] = rec
            else:
                log.error(_TAG, "stored cache unreadable, starting empty")
        dm.provide(_STORAGE, lambda: str(self.used()))

    @property
    def enabled(self):
        return self.dm.get_bool(_ENABLED)

    def __len__(self):
        return len(self.entries)

    def used(self):
        """Bytes the entries take now (see _size): the value of AuthCacheCtrlr.Storage.
        Counted when asked, not kept: a use changes an entry's size by a digit or two."""
        n = 0
        for key, rec in self.entries.items():
            n += _size(key, rec)
        return n

    # -- lookups ----------------------------------------------------------------------------

    def get(self, key):
        """The idTokenInfo cached for `key`, or None when absent, expired (then removed) or the
        cache is disabled. Does not count as a use: see `touch`."""
        if not self.enabled:
            return None
        rec = self.entries.get(key)
        if rec is None:
            return None
        if self._expired(rec, self.clock.now()):
            log.info(_TAG, "entry expired, removed")
            del self.entries[key]
            self._save()
            return None
        return rec[0]

    def entry(self, key):
        """[idTokenInfo, last use s, uses] kept for `key`, or None: what the cache holds,
        expired or not, enabled or not (CustomerInformation reports it). Read it only."""
        return self.entries.get(key)

    def touch(self, key):
        """`key` was used to authorize: newer last use, one more use; written later."""
        rec = self.entries.get(key)
        if rec is not None:
            rec[1] = max(rec[1], self.clock.now())
            rec[2] += 1
            self._dirty = True

    def _expired(self, rec, now):
        if now - rec[1] > self.dm.get_int(_LIFETIME):
            return True
        exp = expiry(rec[0])
        return exp is not None and now >= exp

    # -- changes ----------------------------------------------------------------------------

    def put(self, id_token, info):
        """Remember the CSMS's answer `info` for `id_token` (any status) as a use of it.
        Nothing happens when the cache is disabled or the type is never cached."""
        if not self.enabled or id_token["type"] in _UNCACHED:
            return
        key = token_key(id_token)
        info = trim(info)
        now = self.clock.now()
        old = self.entries.get(key)
        if old is not None and old[0] == info:
            self.touch(key)  # the same answer: only a use, no write now
            return
        uses = 1
        if old is not None:
            uses = old[2] + 1
            del self.entries[key]
        rec = [info, now, uses]
        size = _size(key, rec)
        if size > self.capacity:
            log.warn(_TAG, "entry of %d bytes never fits, not cached" % size)
        else:
            self._make_room(size, now)
            self.entries[key] = rec
        self._save()

    def remove(self, key):
        """Forget the entry of `key` (CustomerInformation clear); True when there was one. A
        storage error propagates: the entry is gone from RAM but may still be on flash."""
        if self.entries.pop(key, None) is None:
            return False
        self._save(True)
        return True

    def clear(self):
        """Forget every entry. A storage error propagates (ClearCache answers InternalError)."""
        self.entries = {}
        self._save(True)

    def flush(self, force=False):
        """Write pending use times if _FLUSH_S seconds passed since the last write (or now)."""
        if self._dirty and (force or self.clock.now() - self._saved_at >= _FLUSH_S):
            self._save()

    def _make_room(self, size, now):
        """Drop entries until `size` more bytes fit: expired ones first, then by Policy."""
        free = self.capacity - size - self.used()
        if free >= 0:
            return
        for key in [k for k, rec in self.entries.items() if self._expired(rec, now)]:
            free += _size(key, self.entries.pop(key))
        lfu = self.dm.get(_POLICY) == "LFU"
        while free < 0 and self.entries:
            victim = None
            best = None
            for key, rec in self.entries.items():
                rank = (rec[2], rec[1]) if lfu else (rec[1], rec[2])
                if best is None or rank < best:
                    victim, best = key, rank
            log.info(_TAG, "full: evicted one entry (%s)" % ("LFU" if lfu else "LRU"))
            free += _size(victim, self.entries.pop(victim))

    def _save(self, strict=False):
        """Write the document. A storage error is logged and leaves it dirty for the next
        flush, unless `strict`: a decision never fails on a worn or full flash."""
        self._saved_at = self.clock.now()
        try:
            self.store.save(_STORE, {"v": _FORMAT, "e": self.entries})
        except OSError as e:
            self._dirty = True
            if strict:
                raise
            log.error(_TAG, "not saved: %r" % (e,))
            return
        self._dirty = False


def _valid(rec):
    return (
        type(rec) is list
        and len(rec) == 3
        and type(rec[0]) is dict
        and type(rec[0].get("status")) is str
        and type(rec[1]) is int
        and type(rec[2]) is int
    )
