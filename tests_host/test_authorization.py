"""Authorization (block C), the authorization cache and the local list (block D), CPython.

A fake session and connection stand in for the CSMS link; the device model and the store are
the real ones on tmp_path, so persistence is tested across new instances. Every payload the
station would send or answer is validated against the official OCPP 2.0.1 schema.
"""

import asyncio
from types import SimpleNamespace

import pytest

import ocppj
from clock import Clock
from firmware import auth_cache
from firmware.auth_cache import AuthCache
from firmware.blocks.authorization import Authorization, allowed
from firmware.blocks.local_list import LocalList
from firmware.device_model import DeviceModel
from firmware.variables import declarations
from ocpp_oracle import valid
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z
STORAGE = "AuthCacheCtrlr/Storage"
ENTRIES = "LocalAuthListCtrlr/Entries"
LIST_DPA = "LocalAuthListCtrlr/DisablePostAuthorize"


def iso(t):
    import rfc3339

    return rfc3339.format(t)


class Time:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


class FakeSession:
    """Answers each Authorize with the next of `answers` (a response payload, an exception to
    raise, or "hang"); by default Accepted."""

    def __init__(self):
        self.sent = []
        self.answers = []
        self.timeout_s = 30
        self.in_len = 100

    async def call(self, action, payload):
        self.sent.append((action, valid(action + "Request", payload)))
        a = self.answers.pop(0) if self.answers else {"idTokenInfo": {"status": "Accepted"}}
        if a == "hang":
            await asyncio.sleep(3600)
        if isinstance(a, BaseException):
            raise a
        return valid(action + "Response", a)


def hw():
    return SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)


def decls(storage=None, entries=None, list_dpa=False):
    out = []
    for d in declarations([hw()]):
        if d[0] == STORAGE and storage is not None:
            d = (STORAGE, "ir", "0", ("B", 0, storage, None))
        if d[0] == ENTRIES and entries is not None:
            d = (ENTRIES, "ir", "0", (None, 0, entries, None))
        out.append(d)
    if list_dpa:
        out.append((LIST_DPA, "bw", "false", None))
    return tuple(out)


def station(tmp_path, online=True, values=None, time=None, **kw):
    store = Store(str(tmp_path))
    dm = DeviceModel(store, decls(**kw))
    for k, v in (values or {}).items():
        dm.set(k, v)
    st = SimpleNamespace(
        store=store,
        dm=dm,
        clock=Clock(time or Time()),
        router=ocppj.Router(),
        session=FakeSession(),
        connection=SimpleNamespace(ready=asyncio.Event()),
        spawned=[],
    )
    st.spawn = st.spawned.append
    if online:
        st.connection.ready.set()
    st.local_list = LocalList(st.router, st.session, dm, store, st.clock)
    st.auth = st.authorization = Authorization(
        st.router, st.session, st.connection, dm, store, st.clock, lambda: st.local_list
    )
    return st


def tok(value="AABBCCDD", kind="ISO14443"):
    return {"idToken": value, "type": kind}


def decide(st, token="AABBCCDD", evse=None, kind="ISO14443"):
    return asyncio.run(st.auth.authorize(tok(token, kind), evse))


def status(st, token="AABBCCDD", evse=None, kind="ISO14443"):
    return decide(st, token, evse, kind)["status"]


def info(s, **kw):
    out = {"status": s}
    out.update(kw)
    return out


def answer(s, **kw):
    return {"idTokenInfo": info(s, **kw)}


def authorizes(st):
    return [p for a, p in st.session.sent if a == "Authorize"]


def handler(st, action):
    return st.router.handlers[action][0]


def send_list(st, version, kind="Full", items=None, in_len=100):
    req = {"versionNumber": version, "updateType": kind}
    if items is not None:
        req["localAuthorizationList"] = items
    valid("SendLocalListRequest", req)
    st.session.in_len = in_len
    return valid("SendLocalListResponse", handler(st, "SendLocalList")(req))


def list_item(token, s=None, kind="ISO14443", **kw):
    item = {"idToken": tok(token, kind)}
    if s is not None:
        item["idTokenInfo"] = info(s, **kw)
    return item


def list_version(st):
    return valid("GetLocalListVersionResponse", handler(st, "GetLocalListVersion")({}))


def clear_cache(st):
    return valid("ClearCacheResponse", handler(st, "ClearCache")({}))


def cached(st, token="AABBCCDD", kind="ISO14443"):
    rec = st.auth.cache.entries.get(auth_cache.token_key(tok(token, kind)))
    return rec[0] if rec else None


# -- decision step 1: no authorization needed ------------------------------------------------


def test_disabled_authorization_and_free_token_types_accept_without_asking(tmp_path):
    st = station(tmp_path, values={"AuthCtrlr/Enabled": "false"})
    assert decide(st) == {"status": "Accepted"}
    st.dm.set("AuthCtrlr/Enabled", "true")
    assert decide(st, "", kind="NoAuthorization") == {"status": "Accepted"}
    assert decide(st, "REMOTE-1", kind="Central") == {"status": "Accepted"}
    assert authorizes(st) == [] and len(st.auth.cache) == 0
    # Offline as well.
    st.connection.ready.clear()
    assert status(st, "REMOTE-1", kind="Central") == "Accepted"


def test_malformed_tokens_are_invalid_without_asking(tmp_path):
    st = station(tmp_path)
    assert status(st, "x" * 37) == "Invalid"
    assert status(st, "") == "Invalid"
    assert status(st, "AABB", kind="Badge") == "Invalid"
    assert authorizes(st) == []


# -- step 3: online ------------------------------------------------------------------------


def test_online_unknown_token_is_asked_and_every_answer_is_cached(tmp_path):
    st = station(tmp_path)
    st.session.answers = [answer("Blocked"), answer("Accepted", groupIdToken=tok("G1", "Local"))]
    assert decide(st) == {"status": "Blocked"}
    assert authorizes(st) == [{"idToken": {"idToken": "AABBCCDD", "type": "ISO14443"}}]
    assert cached(st) == {"status": "Blocked"}
    # Known but not Accepted: asked again (C10.FR.03), the new answer replaces the old.
    assert decide(st) == info("Accepted", groupIdToken=tok("G1", "Local"))
    assert len(authorizes(st)) == 2
    assert cached(st) == info("Accepted", groupIdToken=tok("G1", "Local"))


def test_cached_accepted_token_is_asked_again_unless_local_pre_authorize(tmp_path):
    st = station(tmp_path)
    st.auth.remember(tok(), info("Accepted"))
    st.session.answers = [answer("Invalid")]
    assert status(st) == "Invalid"  # TC_C_36: LocalPreAuthorize false, the CSMS decides
    assert cached(st) == {"status": "Invalid"}
    st.auth.remember(tok(), info("Accepted"))
    st.dm.set("AuthCtrlr/LocalPreAuthorize", "true")
    uses = st.auth.cache.entries["ISO14443:aabbccdd"][2]
    assert status(st) == "Accepted"
    assert len(authorizes(st)) == 1  # no second Authorize
    assert st.auth.cache.entries["ISO14443:aabbccdd"][2] == uses + 1


def test_local_list_accepted_with_pre_authorize_needs_no_authorize(tmp_path):
    st = station(tmp_path, values={"AuthCtrlr/LocalPreAuthorize": "true"})
    assert send_list(st, 1, items=[list_item("AABBCCDD", "Accepted")]) == {"status": "Accepted"}
    assert status(st) == "Accepted" and authorizes(st) == []
    st.dm.set("AuthCtrlr/LocalPreAuthorize", "false")
    st.session.answers = [answer("Blocked")]
    assert status(st) == "Blocked"
    assert len(authorizes(st)) == 1
    assert cached(st) is None  # a token on the list is left to the list


def test_known_refused_tokens_are_asked_unless_disable_post_authorize(tmp_path):
    st = station(tmp_path, list_dpa=True)
    st.auth.remember(tok("C1"), info("Blocked"))
    send_list(st, 1, items=[list_item("L1", "Expired")])
    st.session.answers = [answer("Accepted"), answer("Accepted")]
    assert status(st, "C1") == "Accepted" and status(st, "L1") == "Accepted"
    assert len(authorizes(st)) == 2
    st.auth.remember(tok("C1"), info("Blocked"))
    st.dm.set("AuthCacheCtrlr/DisablePostAuthorize", "true")
    st.dm.set(LIST_DPA, "true")
    assert status(st, "C1") == "Blocked" and status(st, "L1") == "Expired"
    assert len(authorizes(st)) == 2
    # Each flag covers its own source only.
    st.dm.set(LIST_DPA, "false")
    st.session.answers = [answer("Invalid")]
    assert status(st, "L1") == "Invalid" and len(authorizes(st)) == 3


def test_list_disable_post_authorize_is_optional(tmp_path):
    st = station(tmp_path)  # LocalAuthListCtrlr.DisablePostAuthorize not declared: false
    send_list(st, 1, items=[list_item("L1", "Blocked")])
    st.session.answers = [answer("Blocked")]
    assert status(st, "L1") == "Blocked" and len(authorizes(st)) == 1


def test_disable_remote_authorization_uses_local_data_only(tmp_path):
    st = station(tmp_path, values={"AuthCtrlr/DisableRemoteAuthorization": "true"})
    assert status(st, "NEW") == "Unknown"
    st.auth.remember(tok("C1"), info("Accepted"))
    st.auth.remember(tok("C2"), info("NoCredit"))
    send_list(st, 1, items=[list_item("L1", "Accepted")])
    assert [status(st, t) for t in ("C1", "C2", "L1")] == ["Accepted", "NoCredit", "Accepted"]
    assert authorizes(st) == []


@pytest.mark.parametrize(
    "failure",
    [
        asyncio.TimeoutError(),
        ocppj.NotConnected(),
        ocppj.CallError("InternalError", "", None, True),
        OSError(104),
    ],
)
def test_no_answer_to_authorize_decides_offline(tmp_path, failure):
    st = station(tmp_path)
    st.auth.remember(tok("KNOWN"), info("Accepted"))
    st.session.answers = [failure, failure]
    assert status(st, "KNOWN") == "Accepted"
    assert status(st, "NEW") == "Unknown"
    assert cached(st, "NEW") is None  # no answer, nothing to cache
    assert len(authorizes(st)) == 2


def test_a_hanging_authorize_is_bounded(tmp_path):
    st = station(tmp_path, values={"AuthCtrlr/OfflineTxForUnknownIdEnabled": "true"})
    st.session.timeout_s = 0.05  # the bound is twice MessageTimeout
    st.session.answers = ["hang"]
    assert status(st) == "Accepted"  # offline rules: unknown allowed by the setting


# -- step 4: offline -----------------------------------------------------------------------


def test_offline_rules(tmp_path):
    st = station(tmp_path, online=False)
    st.auth.remember(tok("OK"), info("Accepted"))
    st.auth.remember(tok("BAD"), info("Blocked"))
    assert status(st, "OK") == "Accepted"
    assert status(st, "BAD") == "Blocked"
    assert status(st, "NEW") == "Unknown"
    st.dm.set("AuthCtrlr/OfflineTxForUnknownIdEnabled", "true")
    assert status(st, "NEW") == "Accepted"
    assert status(st, "BAD") == "Blocked"  # known refused stays refused (C13.FR.04 errata)
    st.dm.set("AuthCtrlr/LocalAuthorizeOffline", "false")
    assert status(st, "OK") == "NotAtThisTime"
    assert authorizes(st) == []
    assert cached(st, "NEW") is None


def test_offline_local_list_comes_before_the_cache(tmp_path):
    st = station(tmp_path, online=False)
    st.auth.remember(tok("T1"), info("Accepted"))
    send_list(st, 1, items=[list_item("T1", "Blocked"), list_item("T2", "Accepted")])
    assert status(st, "T1") == "Blocked"
    assert status(st, "T2") == "Accepted"
    st.dm.set("LocalAuthListCtrlr/Enabled", "false")
    assert status(st, "T1") == "Accepted" and status(st, "T2") == "Unknown"


def test_without_the_local_list_block_loaded_the_cache_decides(tmp_path):
    # firmware/main.py builds the local list only when a list is on flash or the CSMS asks.
    st = station(tmp_path, online=False)
    st.local_list = None
    st.auth.remember(tok("T1"), info("Accepted"))
    assert status(st, "T1") == "Accepted" and status(st, "T2") == "Unknown"
    st.connection.ready.set()
    st.session.answers = [answer("Accepted")]
    assert status(st, "T3") == "Accepted" and cached(st, "T3") == {"status": "Accepted"}


def test_local_list_expiry_date_makes_an_entry_expired(tmp_path):
    time = Time()
    st = station(tmp_path, online=False, time=time)
    send_list(st, 1, items=[list_item("T1", "Accepted", cacheExpiryDateTime=iso(NOW + 10))])
    assert status(st, "T1") == "Accepted"
    time.t = NOW + 10
    assert status(st, "T1") == "Expired"


def test_tokens_are_case_insensitive(tmp_path):
    st = station(tmp_path, online=False)
    st.auth.remember(tok("aabbccdd"), info("Accepted"))
    assert status(st, "AABBCCDD") == "Accepted"
    assert status(st, "AABBCCDD", kind="ISO15693") == "Unknown"  # the type is part of it


# -- evseId restriction --------------------------------------------------------------------


def test_evse_id_restricts_a_token_to_its_evses(tmp_path):
    st = station(tmp_path)
    st.session.answers = [answer("Accepted", evseId=[2])]
    assert decide(st, evse=1) == info("NotAtThisLocation", evseId=[2])
    assert cached(st) == info("Accepted", evseId=[2])  # the CSMS's answer, unchanged
    st.connection.ready.clear()
    assert status(st, evse=2) == "Accepted"
    assert status(st, evse=1) == "NotAtThisLocation"
    got = decide(st)  # any EVSE: the caller checks with allowed()
    assert got["status"] == "Accepted"
    assert allowed(got, 2) and not allowed(got, 1) and allowed(got, None)
    assert not allowed(info("Blocked"), None)


# -- the cache ---------------------------------------------------------------------------


def test_cache_lifetime_counts_from_the_last_use(tmp_path):
    time = Time()
    st = station(tmp_path, online=False, time=time, values={"AuthCacheCtrlr/LifeTime": "100"})
    st.auth.remember(tok(), info("Accepted"))
    time.t = NOW + 90
    assert status(st) == "Accepted"  # a use: the lifetime starts again
    time.t = NOW + 190
    assert status(st) == "Accepted"
    time.t = NOW + 291
    assert status(st) == "Unknown"  # 101 s unused: expired and removed
    assert cached(st) is None
    assert "ISO14443:aabbccdd" not in Store(str(tmp_path)).load("auth_cache")["e"]


def test_cache_expiry_date_time_is_honoured(tmp_path):
    time = Time()
    st = station(tmp_path, time=time)
    st.session.answers = [answer("Accepted", cacheExpiryDateTime=iso(NOW + 10))]
    assert status(st) == "Accepted"
    st.connection.ready.clear()
    time.t = NOW + 9
    assert status(st) == "Accepted"
    time.t = NOW + 10
    assert status(st) == "Unknown" and cached(st) is None


def test_cache_keeps_only_the_decision_fields(tmp_path):
    st = station(tmp_path)
    st.session.answers = [
        answer(
            "Accepted",
            personalMessage={"format": "UTF8", "content": "Hello"},
            language1="en",
            evseId=[1],
            chargingPriority=2,
            customData={"vendorId": "x"},
        )
    ]
    assert status(st) == "Accepted"
    assert cached(st) == info("Accepted", evseId=[1], chargingPriority=2)


def test_disabled_cache_neither_stores_nor_answers_and_refuses_clear_cache(tmp_path):
    st = station(tmp_path, online=False)
    st.auth.remember(tok("OLD"), info("Accepted"))
    st.dm.set("AuthCacheCtrlr/Enabled", "false")
    st.auth.remember(tok("NEW"), info("Accepted"))
    assert cached(st, "NEW") is None
    assert status(st, "OLD") == "Unknown"
    assert clear_cache(st) == {"status": "Rejected"}
    st.dm.set("AuthCacheCtrlr/Enabled", "true")
    assert status(st, "OLD") == "Accepted"  # disabled is not cleared
    assert clear_cache(st) == {"status": "Accepted"}
    assert len(st.auth.cache) == 0 and status(st, "OLD") == "Unknown"
    assert Store(str(tmp_path)).load("auth_cache") == {"v": 1, "e": {}}
    assert st.dm.get(STORAGE) == "0"


def test_transaction_event_answers_are_remembered_but_not_central_ones(tmp_path):
    st = station(tmp_path, online=False)
    st.auth.remember(tok("T1"), info("ConcurrentTx"))
    st.auth.remember(tok("R1", "Central"), info("Accepted"))
    assert cached(st, "T1") == {"status": "ConcurrentTx"}
    assert len(st.auth.cache) == 1
    assert status(st, "T1") == "ConcurrentTx"


def _entry_size():
    rec = [{"status": "Accepted"}, NOW, 1]
    return auth_cache._size("ISO14443:t1", rec)


def _fill(st, time, tokens):
    for i, t in enumerate(tokens):
        time.t = NOW + i
        st.auth.remember(tok(t), info("Accepted"))


def test_lru_eviction_drops_the_least_recently_used(tmp_path):
    time = Time()
    cap = 3 * _entry_size()
    st = station(tmp_path, online=False, time=time, storage=cap)
    _fill(st, time, ["T1", "T2", "T3"])
    assert int(st.dm.get(STORAGE)) == cap
    time.t = NOW + 10
    assert status(st, "T1") == "Accepted"  # T1 used last now; T2 is the oldest
    st.auth.remember(tok("T4"), info("Accepted"))
    assert sorted(st.auth.cache.entries) == ["ISO14443:t1", "ISO14443:t3", "ISO14443:t4"]
    assert int(st.dm.get(STORAGE)) <= cap


def test_lfu_eviction_drops_the_least_often_used(tmp_path):
    time = Time()
    st = station(
        tmp_path,
        online=False,
        time=time,
        storage=3 * _entry_size(),
        values={"AuthCacheCtrlr/Policy": "LFU"},
    )
    _fill(st, time, ["T1", "T2", "T3"])
    time.t = NOW + 10
    for t in ("T1", "T1", "T2", "T3", "T3", "T3"):
        assert status(st, t) == "Accepted"
    st.auth.remember(tok("T4"), info("Accepted"))
    assert sorted(st.auth.cache.entries) == ["ISO14443:t1", "ISO14443:t3", "ISO14443:t4"]


def test_expired_entries_are_evicted_first(tmp_path):
    time = Time()
    t3 = info("Accepted", cacheExpiryDateTime=iso(NOW + 5))
    cap = 2 * _entry_size() + auth_cache._size("ISO14443:t3", [t3, NOW + 2, 1])
    st = station(tmp_path, online=False, time=time, storage=cap)
    _fill(st, time, ["T1", "T2"])
    time.t = NOW + 2
    st.auth.remember(tok("T3"), t3)
    assert len(st.auth.cache) == 3 and int(st.dm.get(STORAGE)) == cap
    time.t = NOW + 6
    st.auth.remember(tok("T4"), info("Accepted"))
    assert sorted(st.auth.cache.entries) == ["ISO14443:t1", "ISO14443:t2", "ISO14443:t4"]


def test_cache_survives_a_new_instance(tmp_path):
    st = station(tmp_path)
    st.session.answers = [answer("Accepted", evseId=[1]), answer("Blocked")]
    assert status(st, "T1") == "Accepted" and status(st, "T2") == "Blocked"
    st2 = station(tmp_path, online=False)
    assert decide(st2, "T1") == info("Accepted", evseId=[1])
    assert status(st2, "T2") == "Blocked"
    assert st2.dm.get(STORAGE) == st.dm.get(STORAGE) != "0"


def test_unreadable_cache_file_starts_empty(tmp_path):
    Store(str(tmp_path)).save("auth_cache", {"v": 99, "e": []})
    st = station(tmp_path, online=False)
    assert len(st.auth.cache) == 0
    Store(str(tmp_path)).save(
        "auth_cache",
        {"v": 1, "e": {"k": ["bad"], "ISO14443:t1": [{"status": "Accepted"}, NOW, 1]}},
    )
    st = station(tmp_path, online=False)
    assert list(st.auth.cache.entries) == ["ISO14443:t1"]


class CountingStore(Store):
    def __init__(self, root):
        super().__init__(root)
        self.saves = []

    def save(self, name, doc):
        self.saves.append(name)
        super().save(name, doc)


def test_uses_are_written_at_most_once_a_minute(tmp_path):
    time = Time()
    st = station(tmp_path, time=time)
    store = CountingStore(str(tmp_path))
    cache = AuthCache(store, st.dm, st.clock)
    cache.put(tok(), info("Accepted"))
    assert store.saves == ["auth_cache"]  # a new entry: written at once
    cache.put(tok(), info("Accepted"))  # the same answer again: only a use
    cache.touch("ISO14443:aabbccdd")
    time.t = NOW + 59
    cache.flush()
    assert store.saves == ["auth_cache"]
    assert store.load("auth_cache")["e"]["ISO14443:aabbccdd"][1:] == [NOW, 1]
    time.t = NOW + 60
    cache.flush()
    assert store.saves == ["auth_cache"] * 2
    assert store.load("auth_cache")["e"]["ISO14443:aabbccdd"][1:] == [NOW, 3]
    cache.flush()
    assert len(store.saves) == 2  # nothing pending: nothing written
    cache.touch("ISO14443:aabbccdd")
    cache.flush(force=True)
    assert len(store.saves) == 3
    cache.put(tok(), info("Blocked"))  # a change: written at once
    assert len(store.saves) == 4


def test_last_use_never_goes_back_in_time(tmp_path):
    time = Time()
    st = station(tmp_path, online=False, time=time)
    st.auth.remember(tok(), info("Accepted"))
    time.t = 946684800  # 2000-01-01: a board whose clock is not set yet
    assert status(st) == "Accepted"
    assert st.auth.cache.entries["ISO14443:aabbccdd"][1] == NOW


def test_a_failing_flash_never_fails_a_decision(tmp_path):
    st = station(tmp_path)

    def broken(name, doc):
        raise OSError(28)  # ENOSPC

    st.store.save = broken
    st.session.answers = [answer("Accepted")]
    assert status(st) == "Accepted"
    assert cached(st) == {"status": "Accepted"}  # kept in RAM, written at the next flush
    with pytest.raises(OSError):
        handler(st, "ClearCache")({})  # ClearCache answers InternalError


# -- ClearCache ------------------------------------------------------------------------------


def test_clear_cache_accepted_empties_and_persists(tmp_path):
    st = station(tmp_path)
    st.auth.remember(tok(), info("Accepted"))
    assert clear_cache(st) == {"status": "Accepted"}
    st2 = station(tmp_path, online=False)
    assert status(st2) == "Unknown"


# -- SendLocalList, GetLocalListVersion --------------------------------------------------------


def test_local_list_versions_and_updates(tmp_path):
    st = station(tmp_path, online=False)
    assert list_version(st) == {"versionNumber": 0}
    assert st.dm.get(ENTRIES) == "0"
    full = [list_item("T1", "Accepted"), list_item("T2", "Blocked")]
    assert send_list(st, 5, items=full) == {"status": "Accepted"}
    assert list_version(st) == {"versionNumber": 5}
    assert st.dm.get(ENTRIES) == "2"
    for v in (5, 4):
        assert send_list(st, v, "Differential", [list_item("T3", "Accepted")]) == {
            "status": "VersionMismatch"
        }
    for v in (0, -1):
        assert send_list(st, v, "Full", full) == {
            "status": "Failed",
            "statusInfo": {"reasonCode": "InvalidValue"},
        }
        assert send_list(st, v, "Differential", full)["status"] == "Failed"
    assert list_version(st) == {"versionNumber": 5}
    diff = [list_item("T2", "Accepted"), list_item("T1"), list_item("T3", "Invalid")]
    assert send_list(st, 6, "Differential", diff) == {"status": "Accepted"}
    assert st.local_list.entries == {
        "ISO14443:t2": {"status": "Accepted"},
        "ISO14443:t3": {"status": "Invalid"},
    }
    assert [status(st, t) for t in ("T1", "T2", "T3")] == ["Unknown", "Accepted", "Invalid"]
    # A differential without entries only moves the version on.
    assert send_list(st, 7, "Differential") == {"status": "Accepted"}
    assert list_version(st) == {"versionNumber": 7} and len(st.local_list.entries) == 2
    # A full list may go back in version; an empty one clears.
    assert send_list(st, 3, "Full", [list_item("T9", "Accepted")]) == {"status": "Accepted"}
    assert list(st.local_list.entries) == ["ISO14443:t9"]
    assert send_list(st, 4, "Full") == {"status": "Accepted"}
    assert st.local_list.entries == {} and list_version(st) == {"versionNumber": 4}


def test_local_list_refuses_bad_lists_and_changes_nothing(tmp_path):
    st = station(tmp_path, online=False, entries=3)
    send_list(st, 1, items=[list_item("T1", "Accepted")])
    failed = {"status": "Failed", "statusInfo": {"reasonCode": "InvalidValue"}}
    twice = [list_item("T2", "Accepted"), list_item("t2", "Blocked")]
    assert send_list(st, 2, "Full", twice) == failed
    assert send_list(st, 2, "Differential", twice) == failed
    assert send_list(st, 2, "Full", [list_item("T2")]) == failed  # no idTokenInfo in a Full
    four = [list_item("T%d" % i, "Accepted") for i in range(4)]
    assert send_list(st, 2, "Full", four) == {"status": "Failed"}  # over Entries maxLimit
    three = [list_item("N%d" % i, "Accepted") for i in range(3)]
    assert send_list(st, 2, "Differential", three) == {"status": "Failed"}  # 1 + 3 > 3
    assert list_version(st) == {"versionNumber": 1}
    assert list(st.local_list.entries) == ["ISO14443:t1"]
    # Deletions make room within the same message.
    assert send_list(st, 2, "Differential", [list_item("T1")] + three) == {"status": "Accepted"}
    assert st.dm.get(ENTRIES) == "3"
    st.dm.set("LocalAuthListCtrlr/Enabled", "false")
    assert send_list(st, 9, "Full") == {
        "status": "Failed",
        "statusInfo": {"reasonCode": "NotEnabled"},
    }
    st.dm.set("LocalAuthListCtrlr/Enabled", "true")
    assert list_version(st) == {"versionNumber": 2}


def test_a_disabled_local_list_has_version_0_and_takes_no_update(tmp_path):
    st = station(tmp_path, online=False)
    assert send_list(st, 7, items=[list_item("T1", "Accepted")]) == {"status": "Accepted"}
    st.dm.set("LocalAuthListCtrlr/Enabled", "false")
    assert list_version(st) == {"versionNumber": 0}  # D02: no list in use
    assert status(st, "T1") == "Unknown"
    not_enabled = {"status": "Failed", "statusInfo": {"reasonCode": "NotEnabled"}}
    assert send_list(st, 8, "Full", [list_item("T2", "Accepted")]) == not_enabled
    assert send_list(st, 8, "Differential", [list_item("T1")]) == not_enabled
    # Kept meanwhile, on flash too: enabled again, the stored list is back as it was.
    st2 = station(tmp_path, online=False)
    assert list_version(st2) == {"versionNumber": 0}
    st2.dm.set("LocalAuthListCtrlr/Enabled", "true")
    assert list_version(st2) == {"versionNumber": 7}
    assert status(st2, "T1") == "Accepted"


def test_local_list_message_limits_are_callerrors(tmp_path):
    st = station(tmp_path)
    h = handler(st, "SendLocalList")
    many = [list_item("T%d" % i, "Accepted") for i in range(21)]
    with pytest.raises(ocppj.CallError) as e:
        h({"versionNumber": 1, "updateType": "Full", "localAuthorizationList": many})
    assert e.value.code == "OccurrenceConstraintViolation"
    assert send_list(st, 1, "Full", many[:20]) == {"status": "Accepted"}
    st.session.in_len = 4097
    with pytest.raises(ocppj.CallError) as e:
        h({"versionNumber": 2, "updateType": "Full", "localAuthorizationList": many[:1]})
    assert e.value.code == "FormatViolation"
    assert send_list(st, 2, "Full", many[:1], in_len=4096) == {"status": "Accepted"}


def test_local_list_survives_a_new_instance(tmp_path):
    st = station(tmp_path, online=False)
    send_list(st, 12, items=[list_item("T1", "Accepted", evseId=[1])])
    st2 = station(tmp_path, online=False)
    assert list_version(st2) == {"versionNumber": 12}
    assert decide(st2, "T1") == info("Accepted", evseId=[1])
    assert st2.dm.get(ENTRIES) == "1"
    doc = Store(str(tmp_path)).load("local_list")
    assert doc == {"version": 12, "list": {"ISO14443:t1": info("Accepted", evseId=[1])}}


def test_the_actions_are_registered(tmp_path):
    st = station(tmp_path)
    assert {"ClearCache", "SendLocalList", "GetLocalListVersion"} <= set(st.router.handlers)
