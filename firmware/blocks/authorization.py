# authorization: OCPP block C: whether an idToken may charge (local list, cache, Authorize,
# offline rules), ClearCache, and the cache kept from every answer. MIT licence.

import asyncio

from micropython import const

import log
from firmware.auth_cache import AuthCache, token_key

_TAG = const("auth")

_AUTH = const("AuthCtrlr/")
_CACHE = const("AuthCacheCtrlr/")
_LIST = const("LocalAuthListCtrlr/")

_ACCEPTED = const("Accepted")
_MAX_TOKEN = const(36)  # longest idToken (IdTokenType.idToken maxLength)
_TYPES = const(("Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress"))
_FREE = const(("NoAuthorization", "Central"))  # token types that need no authorization

_ACCEPTED_INFO = {"status": _ACCEPTED}
_UNKNOWN_INFO = {"status": "Unknown"}  # not known here and no CSMS to ask
_INVALID_INFO = {"status": "Invalid"}


def allowed(info, evse_id):
    """True when idTokenInfo `info` lets its token charge on EVSE `evse_id`: status Accepted,
    and `evse_id` among its evseId list if it has one (None: any EVSE will do)."""
    if info["status"] != _ACCEPTED:
        return False
    ids = info.get("evseId")
    return ids is None or evse_id is None or evse_id in ids


class Authorization:
    """Decides on idTokens, in the order of ocpp201-station.md §2.4:

    1. AuthCtrlr.Enabled false, or a NoAuthorization / Central token: Accepted.
    2. (A token ending its own session needs no decision: the transactions block's business.)
    3. Online (connected and Accepted): Accepted in the local list, or in the cache, with
       LocalPreAuthorize: Accepted at once. DisableRemoteAuthorization: what the list or cache
       says, unknown = refused. A known non-Accepted token with the DisablePostAuthorize of
       where it was found (AuthCacheCtrlr / LocalAuthListCtrlr): refused at once. Otherwise an
       Authorize goes out and its answer decides; no answer (timeout, link lost, CALLERROR)
       counts as offline.
    4. Offline: known Accepted: Accepted if LocalAuthorizeOffline; known otherwise: refused
       with its status; unknown: Accepted only with OfflineTxForUnknownIdEnabled.

    Every Authorize answer goes into the cache (unless the token is on the local list, which
    the cache would only shadow). Last, an Accepted token restricted by evseId[] to other
    EVSEs than the one asked for is refused with NotAtThisLocation.
    """

    def __init__(self, router, session, connection, dm, store, clock, local_list):
        """local_list(): the local list block, or None while it is not loaded (no list on
        flash: nothing to find there)."""
        self.session = session
        self.connection = connection
        self.dm = dm
        self._local_list = local_list
        self.cache = AuthCache(store, dm, clock)
        router.on("ClearCache", self.on_clear_cache)

    # -- ClearCache (C11) -------------------------------------------------------------------

    def on_clear_cache(self, req):
        if not self.cache.enabled:
            return {"status": "Rejected"}
        self.cache.clear()
        log.info(_TAG, "cache cleared")
        return {"status": "Accepted"}

    # -- decisions --------------------------------------------------------------------------

    async def authorize(self, id_token, evse_id=None):
        """The idTokenInfo deciding whether `id_token` ({"idToken", "type"}) may charge (on
        EVSE `evse_id`, or anywhere when None). Only status Accepted authorizes; see
        `allowed` for the evseId restriction when `evse_id` is None. The dict returned may
        be shared with the cache or list: read it, do not change it."""
        info = await self._decide(id_token)
        if info["status"] == _ACCEPTED and not allowed(info, evse_id):
            info = dict(info)
            info["status"] = "NotAtThisLocation"
        log.info(_TAG, "%s token: %s" % (id_token["type"], info["status"]))
        return info

    async def _decide(self, id_token):
        dm = self.dm
        if not dm.get_bool(_AUTH + "Enabled") or id_token["type"] in _FREE:
            return _ACCEPTED_INFO
        if id_token["type"] not in _TYPES or not 0 < len(id_token["idToken"]) <= _MAX_TOKEN:
            return _INVALID_INFO  # no IdTokenType: nothing the CSMS could be asked about
        key = token_key(id_token)
        info = None
        local = self._local_list()
        if local is not None:
            info = local.get(key)
        where = _LIST
        if info is None:
            info = self.cache.get(key)
            where = _CACHE
        online = self.connection.ready.is_set()
        if online:
            if info is not None and info["status"] == _ACCEPTED:
                if dm.get_bool(_AUTH + "LocalPreAuthorize"):
                    return self._used(where, key, info)
            if dm.get_bool(_AUTH + "DisableRemoteAuthorization"):
                if info is None:
                    return _UNKNOWN_INFO
                return self._used(where, key, info)
            if info is not None and info["status"] != _ACCEPTED:
                if dm.setting(where + "DisablePostAuthorize", False):
                    return info
            answer = await self._ask(id_token)
            if answer is not None:
                self.remember(id_token, answer)
                return answer
            log.info(_TAG, "no answer to Authorize: deciding offline")
        # Offline (C13, C15).
        if info is None:
            if dm.get_bool(_AUTH + "OfflineTxForUnknownIdEnabled"):
                return _ACCEPTED_INFO
            return _UNKNOWN_INFO
        if info["status"] != _ACCEPTED:
            return info
        if not dm.get_bool(_AUTH + "LocalAuthorizeOffline"):
            return {"status": "NotAtThisTime"}  # known and valid, but not without the CSMS
        return self._used(where, key, info)

    def _used(self, where, key, info):
        if where == _CACHE:
            self.cache.touch(key)
        return info

    async def _ask(self, id_token):
        """The CSMS's idTokenInfo for `id_token`, or None when there is no answer."""
        session = self.session
        req = {"idToken": {"idToken": id_token["idToken"], "type": id_token["type"]}}
        # session.call times the reply out after MessageTimeout; the bound here also covers
        # the wait for the CALL slot while another CALL of ours is outstanding.
        bound_ms = int(session.timeout_s * 2000)
        try:
            resp = await asyncio.wait_for_ms(session.call("Authorize", req), bound_ms)
        except Exception as e:  # timeout, not connected, CALLERROR, socket error: no answer
            log.warn(_TAG, "Authorize: %r" % (e,))
            return None
        return resp["idTokenInfo"]

    def remember(self, id_token, id_token_info):
        """Cache the CSMS's idTokenInfo for `id_token` (from an Authorize or TransactionEvent
        response, any status). Tokens on the enabled local list are left to the list."""
        local = self._local_list()
        if local is not None and local.get(token_key(id_token)) is not None:
            return
        self.cache.put(id_token, id_token_info)

    def flush(self):
        """Write the cache's pending use times (the station calls it once a minute: no task
        of its own, some 150 B of heap)."""
        try:
            self.cache.flush()
        except Exception as e:  # a full or failing file system: logged, retried later
            log.exc(_TAG, "cache flush", e)
