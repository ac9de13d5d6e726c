# charging_profiles: the rules of SetChargingProfile (OCPP 2.0.1 K01) and the store of charging
# profiles (K01, K09 GetChargingProfiles/ReportChargingProfiles, K10 ClearChargingProfile).
# MIT licence.
#
# Profiles are ChargingProfileType dicts exactly as they came on the wire (schema-checked before
# they get here). The schedule maths (the limit at an instant, GetCompositeSchedule) lives in
# lib/schedule.py; this module only decides what is stored and what is reported.
#
# Decisions where the spec leaves room (see ../shared/docs/ocpp201-station.md §2.10):
# - More than one chargingSchedule is an ISO 15118 offer; this station has no ISO 15118, so a
#   profile with more than one is Rejected ("TooManySchedules").
# - numberPhases absent is not checked against the supply (FR.49's default of 3 is capped by the
#   supply when applied); on EVSE 0 numberPhases is checked against the largest supply of the
#   EVSEs.
# - FR.06 (same purpose + EVSE + stackLevel, overlapping validFrom..validTo, another id) applies
#   to ChargingStationMaxProfile and TxDefaultProfile; for TxProfile FR.39 (same transactionId +
#   stackLevel, another id) is the rule. FR.52/53 (TxDefault with one stackLevel both on EVSE 0
#   and an EVSE) holds whatever the validity.
# - Values the spec bounds but the schema does not (stackLevel < 0, a limit negative, NaN or
#   infinite, numberPhases or phaseToUse not 1..3, duration < 0, validTo not after validFrom, an
#   unreadable time) are Rejected with "InvalidValue".
# - K01.FR.05 replaces a profile of the same id, but never one of the station's external
#   constraints: such an id is Rejected ("ExternalProfileId").
# - A TxProfile needs its transactionId here; RequestStartTransaction's profile (K05) gets the
#   new transaction's id filled in by the caller before `check` and `put`.
# - chargingLimitSource: ChargingStationExternalConstraints are the station's own ("EMS"), every
#   other profile came from the CSMS ("CSO").
# - GetChargingProfiles evseId: 0 = the profiles installed on EVSE 0 only, N = those installed
#   on EVSE N only (not EVSE 0's), absent = all.
# - ClearChargingProfile: a chargingProfileId clears that profile alone, criteria ignored (as
#   K10.FR.03 reads and EVerest's libocpp does); else the criteria given must all match; neither
#   given clears every profile. ChargingStationExternalConstraints are never cleared (K10.FR.04).

from micropython import const

import log
import rfc3339

# store document: {"v": 1, "p": [[evseId, chargingProfile], ...]} (TxProfiles are not kept)
_STORE = const("charging_profiles")
_FORMAT = const(1)  # the document's format version ("v")
_TAG = const("profiles")

_MAX = const("ChargingStationMaxProfile")
_DEFAULT = const("TxDefaultProfile")
_TX = const("TxProfile")
_EXTERNAL = const("ChargingStationExternalConstraints")
_RELATIVE = const("Relative")
_RECURRING = const("Recurring")

_FAR = const(1 << 40)  # "no validTo": beyond any date (seconds)


def check(evse_id, profile, ctx):
    """None when SetChargingProfile may store `profile` on `evse_id`, else (reasonCode,
    additionalInfo) for a Rejected answer.

    ctx: evses (number of EVSEs, ids 1..evses), tx (indexable by EVSE id: the running
    transactionId or None), phases (indexable by EVSE id: the supply's phases), units
    (SmartChargingCtrlr.RateUnit, e.g. "A,W"), periods (PeriodsPerSchedule), entries
    (Entries' maxLimit), stack (ProfileStackLevel), switching (ACPhaseSwitchingSupported),
    profiles (the Profiles store, or None for none stored)."""
    p = profile
    purpose = p["chargingProfilePurpose"]
    kind = p["chargingProfileKind"]
    level = p["stackLevel"]
    if evse_id < 0 or evse_id > ctx.evses:  # K01.FR.28
        return ("UnknownEVSE", "evseId %d: the station has %d" % (evse_id, ctx.evses))
    if purpose == _EXTERNAL:  # K01.FR.22: the station's own (load management), not the CSMS's
        return ("ExternalConstraints", "set by the station itself, not by the CSMS")
    if purpose == _MAX:  # K01.FR.38
        if evse_id != 0:
            return ("MaxProfileOnEVSE", "ChargingStationMaxProfile needs evseId 0")
        if kind == _RELATIVE:
            return ("MaxProfileRelative", "ChargingStationMaxProfile cannot be Relative")
    tx_id = p.get("transactionId")
    if purpose == _TX:
        if evse_id == 0:  # K01.FR.16
            return ("TxProfileOnEVSE0", "a TxProfile needs an EVSE")
        if tx_id is None:  # K01.FR.03
            return ("NoTransactionId", "a TxProfile needs a transactionId")
        running = ctx.tx[evse_id]
        if running is None:  # K01.FR.09
            return ("NoTransaction", "no transaction on EVSE %d" % evse_id)
        if tx_id != running:  # K01.FR.33
            return ("UnknownTransaction", "transaction %s is not on EVSE %d" % (tx_id, evse_id))
    if level < 0:
        return ("InvalidValue", "stackLevel below 0")
    if level > ctx.stack:  # ProfileStackLevel
        return ("StackLevelTooHigh", "stackLevel %d > %d" % (level, ctx.stack))
    if kind == _RECURRING and "recurrencyKind" not in p:
        return ("NoRecurrencyKind", "a Recurring profile needs recurrencyKind")
    try:
        start, end = _validity(p)
    except ValueError as e:
        return ("InvalidValue", str(e))
    if end <= start:
        return ("InvalidValue", "validTo is not after validFrom")
    schedules = p["chargingSchedule"]
    if len(schedules) > 1:  # more than one is an ISO 15118 offer
        return ("TooManySchedules", "one chargingSchedule (no ISO 15118)")
    for s in schedules:
        r = _check_schedule(evse_id, kind, s, ctx)
        if r is not None:
            return r
    return _check_stored(evse_id, p, purpose, level, tx_id, start, end, ctx)


def _check_schedule(evse_id, kind, s, ctx):
    if kind == _RELATIVE:
        if "startSchedule" in s:  # K01.FR.41
            return ("RelativeWithStart", "a Relative profile has no startSchedule")
    elif "startSchedule" not in s:  # K01.FR.40
        return ("NoStartSchedule", "an %s profile needs startSchedule" % kind)
    else:
        try:
            rfc3339.parse(s["startSchedule"])
        except ValueError as e:
            return ("InvalidValue", "startSchedule: %s" % e)
    if s.get("duration", 0) < 0:
        return ("InvalidValue", "duration below 0")
    unit = s["chargingRateUnit"]
    if unit not in [u.strip() for u in ctx.units.split(",")]:  # K01.FR.26
        return ("UnsupportedRateUnit", "chargingRateUnit %s not in %s" % (unit, ctx.units))
    periods = s["chargingSchedulePeriod"]
    if len(periods) > ctx.periods:  # PeriodsPerSchedule
        return ("TooManyPeriods", "%d periods > %d" % (len(periods), ctx.periods))
    if periods[0]["startPeriod"] != 0:  # K01.FR.31
        return ("FirstPeriodNotZero", "the first startPeriod must be 0")
    if evse_id:
        supply = ctx.phases[evse_id]
    else:  # EVSE 0: the largest supply of the EVSEs
        supply = 0
        for e in range(1, ctx.evses + 1):
            supply = max(supply, ctx.phases[e])
    last = -1
    for q in periods:
        t = q["startPeriod"]
        if t <= last:  # K01.FR.35
            return ("PeriodsNotAscending", "startPeriod %d after %d" % (t, last))
        last = t
        lim = q["limit"]
        if not 0 <= lim < 1e9:  # negative, NaN or infinite (CPython's json reads NaN)
            return ("InvalidValue", "limit %r" % lim)
        n = q.get("numberPhases")
        if n is not None:
            if n < 1 or n > 3:
                return ("InvalidValue", "numberPhases %d" % n)
            if n > supply:  # K01.FR.45
                return ("TooManyPhases", "numberPhases %d > supply %d" % (n, supply))
        ph = q.get("phaseToUse")
        if ph is not None:
            if not ctx.switching:  # K01.FR.20
                return ("NoPhaseSwitching", "phaseToUse: no AC phase switching")
            if n != 1:  # K01.FR.19
                return ("PhaseToUseNot1Phase", "phaseToUse needs numberPhases 1")
            if ph < 1 or ph > 3:
                return ("InvalidValue", "phaseToUse %d" % ph)
    return None


def _check_stored(evse_id, p, purpose, level, tx_id, start, end, ctx):
    """The rules against what is stored already: FR.06, FR.39, FR.52/53, Entries."""
    store = ctx.profiles
    if store is None:
        return None
    pid = p["id"]
    replaces = False
    for e, q in store._items:
        if q["id"] == pid:  # K01.FR.05: replaced, so no conflict and no new entry
            if q["chargingProfilePurpose"] == _EXTERNAL:  # ... unless the station's own
                return ("ExternalProfileId", "id %d is an external constraint" % pid)
            replaces = True
            continue
        if q["stackLevel"] != level:
            continue
        qp = q["chargingProfilePurpose"]
        if purpose == _TX:
            if qp == _TX and q.get("transactionId") == tx_id:  # K01.FR.39
                return ("TxStackLevelInUse", "profile %d has this stackLevel" % q["id"])
            continue
        if qp != purpose:
            continue
        if e == evse_id:  # K01.FR.06
            try:
                qs, qe = _validity(q)
            except ValueError:  # a stored one is readable: checked when set
                qs, qe = -_FAR, _FAR
            if start < qe and qs < end:
                return ("DuplicateStackLevel", "profile %d overlaps" % q["id"])
        elif purpose == _DEFAULT and (e == 0 or evse_id == 0):  # K01.FR.52/53
            return ("TxDefaultConflict", "profile %d on EVSE %d" % (q["id"], e))
    n = store.count()
    if not replaces and n >= ctx.entries:  # SmartChargingCtrlr.Entries
        return ("TooManyProfiles", "%d profiles stored" % n)
    return None


def _validity(p):
    """(validFrom, validTo) in seconds, open ends far away; ValueError when unreadable."""
    s = p.get("validFrom")
    t = p.get("validTo")
    return (-_FAR if s is None else rfc3339.parse(s)), (_FAR if t is None else rfc3339.parse(t))


def _kept(p):
    """Whether profile p is written to flash: not TxProfiles nor external constraints."""
    purpose = p["chargingProfilePurpose"]
    return purpose != _TX and purpose != _EXTERNAL


def source(profile):
    """The chargingLimitSource of a profile: the station's own external constraints "EMS",
    what the CSMS set "CSO"."""
    return "EMS" if profile["chargingProfilePurpose"] == _EXTERNAL else "CSO"


class Profiles:
    """The installed charging profiles, each with its EVSE id.

    All but TxProfiles are kept in one store document, written atomically on every change and
    read back at construction (a bad document is logged and ignored: no profiles). TxProfiles
    live in RAM only: they end with their transaction (`end_transaction`) or a reboot; so do
    the station's own external constraints (`set_external`, load management), which are
    not counted as entries either."""

    def __init__(self, store=None):
        self._store = store
        self._items = []  # (evseId, chargingProfile)
        if store is not None:
            self._load(store.load(_STORE))

    def _load(self, doc):
        if doc is None:
            return
        try:
            if doc["v"] != _FORMAT:
                raise ValueError("format %r" % doc["v"])
            items = []
            for e, p in doc["p"]:
                if type(e) is not int or type(p["id"]) is not int:
                    raise ValueError("entry %r" % e)
                if _kept(p):
                    items.append((e, p))
            self._items = items
        except Exception as e:  # any shape: never a crash at boot
            log.error(_TAG, "%s ignored: %r" % (_STORE, e))

    def _save(self):
        if self._store is None:
            return
        doc = {
            "v": _FORMAT,
            "p": [[e, p] for e, p in self._items if _kept(p)],
        }
        try:
            self._store.save(_STORE, doc)
        except OSError as e:
            log.error(_TAG, "not saved: %r" % e)

    def _remove(self, keep):
        """Drop the items for which keep(evseId, profile) is false; writes the document when a
        persisted one went. The number dropped."""
        n = 0
        persisted = False
        i = 0
        items = self._items
        while i < len(items):
            e, p = items[i]
            if keep(e, p):
                i += 1
            else:
                items.pop(i)
                n += 1
                persisted = persisted or _kept(p)
        if persisted:
            self._save()
        return n

    def put(self, evse_id, profile):
        """Install `profile` (checked by `check`) on `evse_id`, replacing one of the same id
        (K01.FR.05)."""
        pid = profile["id"]
        items = self._items
        persisted = _kept(profile)
        for i in range(len(items)):
            old = items[i][1]
            if old["id"] == pid:  # ids are unique: at most one
                persisted = persisted or _kept(old)
                items.pop(i)
                break
        items.append((evse_id, profile))
        if persisted:  # one write, also when a kept profile became a TxProfile
            self._save()

    def set_external(self, evse_id, profile):
        """Make `profile` (a ChargingStationExternalConstraints profile of the station's own)
        the external constraint of `evse_id`, replacing the one it had; None removes it. Kept
        in RAM, never written."""
        items = self._items
        for i in range(len(items)):
            e, p = items[i]
            if e == evse_id and p["chargingProfilePurpose"] == _EXTERNAL:
                items.pop(i)
                break
        if profile is not None:
            items.append((evse_id, profile))

    def get(self, profile_id):
        """(evseId, profile) of the profile with this id, or None."""
        for item in self._items:
            if item[1]["id"] == profile_id:
                return item
        return None

    def for_evse(self, evse_id):
        """The (evseId, profile) pairs that apply to `evse_id`: its own and EVSE 0's (for EVSE 0
        only EVSE 0's). TxProfiles on an EVSE are those of its running transaction: `check`
        admits no other and `end_transaction` drops them."""
        return [it for it in self._items if it[0] == 0 or it[0] == evse_id]

    def count(self):
        """The number of profiles installed by the CSMS (SmartChargingCtrlr.Entries' actual
        value): the station's own external constraints are not entries."""
        n = 0
        for _, p in self._items:
            if p["chargingProfilePurpose"] != _EXTERNAL:
                n += 1
        return n

    def purge(self, now):
        """Drop the profiles whose validTo has passed at `now` (seconds). The number dropped."""

        def keep(e, p):
            t = p.get("validTo")
            if t is None:
                return True
            try:
                return rfc3339.parse(t) > now
            except ValueError:
                return True

        return self._remove(keep)

    def end_transaction(self, tx_id):
        """Drop the TxProfiles of transaction `tx_id` (it ended). The number dropped."""
        return self._remove(
            lambda e, p: p["chargingProfilePurpose"] != _TX or p.get("transactionId") != tx_id
        )

    def report(self, criteria, evse_id=None):
        """The (evseId, source, profile) triples matching GetChargingProfiles' chargingProfile
        `criteria` and `evse_id` (None: all EVSEs; 0: EVSE 0's only; N: EVSE N's only), sorted by
        EVSE and source: what `report_parts` cuts into ReportChargingProfiles."""
        ids = criteria.get("chargingProfileId")
        level = criteria.get("stackLevel")
        sources = criteria.get("chargingLimitSource")
        purpose = criteria.get("chargingProfilePurpose")
        out = []
        for e, p in self._items:
            if evse_id is not None and e != evse_id:
                continue
            if ids is not None and p["id"] not in ids:
                continue
            if level is not None and p["stackLevel"] != level:
                continue
            if purpose is not None and p["chargingProfilePurpose"] != purpose:
                continue
            src = source(p)
            if sources is not None and src not in sources:
                continue
            out.append((e, src, p))
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    def clear(self, req):
        """ClearChargingProfile: the answer's status, "Accepted" when a profile was removed,
        else "Unknown". By chargingProfileId (the criteria then ignored), else by
        chargingProfileCriteria (evseId, chargingProfilePurpose, stackLevel: all given must
        match); external constraints are never removed (K10.FR.04)."""
        pid = req.get("chargingProfileId")
        c = (pid is None and req.get("chargingProfileCriteria")) or {}
        evse = c.get("evseId")
        purpose = c.get("chargingProfilePurpose")
        level = c.get("stackLevel")

        def keep(e, p):
            return (
                p["chargingProfilePurpose"] == _EXTERNAL
                or (pid is not None and p["id"] != pid)
                or (evse is not None and e != evse)
                or (purpose is not None and p["chargingProfilePurpose"] != purpose)
                or (level is not None and p["stackLevel"] != level)
            )

        return "Accepted" if self._remove(keep) else "Unknown"


def report_parts(reported, request_id, max_items):
    """The ReportChargingProfiles payloads of `reported` (from Profiles.report), one EVSE and
    one chargingLimitSource a part, at most `max_items` profiles a part, tbc false on the
    last. A generator: one payload in RAM at a time (the caller sends each before the next)."""
    n = len(reported)
    max_items = max(1, max_items)
    i = 0
    while i < n:
        e, src, _ = reported[i]
        j = i
        profiles = []
        while (
            j < n and len(profiles) < max_items and reported[j][0] == e and reported[j][1] == src
        ):
            profiles.append(reported[j][2])
            j += 1
        yield {
            "requestId": request_id,
            "chargingLimitSource": src,
            "tbc": j < n,
            "evseId": e,
            "chargingProfile": profiles,
        }
        i = j
