# schedule: OCPP 2.0.1 smart-charging maths (block K): the limit that applies at an instant and
# the composite schedule over a window, both from one computation. MIT licence.
# Ours because no MicroPython package computes OCPP composite schedules.
#
# Functions over the ChargingProfileType dicts exactly as they arrive on the wire (already
# validated by the schema and by the K01 rules). Only the first chargingSchedule of a profile
# is used (the others are ISO 15118 alternatives). Times are Unix seconds, always ints (a float
# is single precision on the ESP32 and would lose the seconds).
#
#   limit_at(profiles, t, ctx)   -> (amps, phases, next)
#       amps:   the limit per phase in A (a float or an int), None when nothing limits
#       phases: the phases that may be used (1..3)
#       next:   the first instant after t at which the result may change, None for never
#               (a change of ctx, e.g. a transaction starting, is the caller's to notice)
#   composite(profiles, start, duration, unit, ctx) -> the CompositeScheduleType dict
#   composite_steps(...)         the same as a lib/steps generator, for steps.run_async
#   in_unit(amps, phases, unit, ctx) -> amps per phase as "A" or "W", rounded to 0.1
#   expired(profile, t)          -> True once validTo has passed (the store purges it)
#
# profiles: a re-iterable (a list, or a store that iterates afresh) of (evse_id, profile)
#   pairs: the wire profile does not carry its EVSE, the SetChargingProfileRequest does.
# ctx: a dict describing the EVSE (every key optional but "evse"):
#   "evse"     the EVSE id; 0 = the station level (the grid connection)
#   "tx"       the transactionId of the transaction running on it, or None
#   "tx_start" when Relative profiles start (Unix s; the transaction start), or None: Relative
#              profiles do not apply
#   "max_a"    the hardware maximum in A per phase (board, cable PP, configured maximum), or
#              None for none
#   "phases"   the phases of the supply (default 3): caps every numberPhases
#   "voltage"  the nominal phase voltage for W <-> A (default 230, K01 SupplyVoltage-style)
#   "share"    the fraction (0..1, default 1) of the station-level limits (the
#              ChargingStationMaxProfile and the external constraints set on EVSE 0) that this
#              EVSE may use, e.g. 1/2 when two EVSEs charge; ignored for EVSE 0
#
# The rules. Per purpose, of the profiles that apply to the EVSE, the valid one (validFrom <= t
# < validTo) with the highest stackLevel whose schedule covers t wins; a schedule covers
# [start, start + duration) (no duration: for ever; Recurring: until the next recurrence),
# from its first period's startPeriod on; outside it the next lower stack level applies.
# Absolute: start = startSchedule. Recurring: startSchedule + k * 86400 (Daily) or 604800
# (Weekly), k >= 0 (never before startSchedule). Relative: start = ctx "tx_start".
# Absolute or Recurring without a startSchedule never apply (K01.FR.40 rejects them).
#   tx limit  = the TxProfile of ctx "tx" if one covers t, else the TxDefaultProfile of this
#               EVSE if one covers t, else the TxDefaultProfile of EVSE 0 (an EVSE's own
#               TxDefault wins whatever the stack levels)
#   limit     = the least of: tx limit, share x ChargingStationMaxProfile (EVSE 0), share x the
#               ChargingStationExternalConstraints on EVSE 0, those on this EVSE, "max_a"
#   EVSE 0    = ChargingStationMaxProfile and the external constraints on EVSE 0 only (the
#               grid connection's limit; no TxDefault, no share)
# Phases: the least of the supply's phases and the numberPhases of every period taking part
# (an absent numberPhases is 3, K01.FR.49). A limit in W becomes A per phase with these
# phases: amps = W / (voltage * phases); in_unit turns it back: W = amps * voltage * phases.
# A mixed result (say 11 kW and 16 A) is thus always amps per phase plus a phase count.
# The composite gives every period its numberPhases, rounds limits to the nearest 0.1 in the
# requested unit (at most 0.05 above what is applied), and reports 80 A (a Mode 3 pilot's
# most) where nothing limits at all.
#
# Cost (unix port, 6 profiles, 150 periods): limit_at ~85 us, one pass over the profiles with
# no lists but its 6 slots; a 24 h composite with 48 changes ~9 ms; 3.5 KiB of heap loaded.

from micropython import const

import rfc3339

_DAY = const(86400)
_WEEK = const(604800)
_VOLTS = const(230)
# The composite reports this when nothing limits at all: the most a Mode 3 pilot can offer.
_NO_LIMIT_A = const(80)
# composite_steps yields after this many change points (each one a pass over the profiles)
_BATCH = const(16)

# Slots of limit_at's winners: index into its `best` list.
_MAX = const(0)  # ChargingStationMaxProfile (EVSE 0)
_EXT0 = const(1)  # ChargingStationExternalConstraints on EVSE 0
_EXT = const(2)  # ChargingStationExternalConstraints on this EVSE
_TX = const(3)  # TxProfile of ctx's transaction
_DEF = const(4)  # TxDefaultProfile on this EVSE
_DEF0 = const(5)  # TxDefaultProfile on EVSE 0


def expired(profile, t):
    """True when profile's validTo is at or before Unix time t: it never applies again."""
    vt = profile.get("validTo")
    return vt is not None and rfc3339.parse(vt) <= t


def _slot(evse, p, ctx):
    # Which slot profile p (set on evse) fills for ctx's EVSE, or -1: it does not apply.
    purpose = p["chargingProfilePurpose"]
    me = ctx["evse"]
    if purpose == "ChargingStationMaxProfile":
        return _MAX if evse == 0 else -1
    if purpose == "ChargingStationExternalConstraints":
        if evse == 0:
            return _EXT0
        return _EXT if evse == me and me != 0 else -1
    if me == 0:
        return -1
    if purpose == "TxProfile":
        tx = ctx.get("tx")
        ok = evse == me and tx is not None and p.get("transactionId") == tx
        return _TX if ok else -1
    if purpose == "TxDefaultProfile":
        if evse == me:
            return _DEF
        return _DEF0 if evse == 0 else -1
    return -1


def _cover(p, t, ctx):
    """(period, next): the chargingSchedulePeriod of p in force at t (None: p does not cover
    t) and the first instant after t at which that may change (None: never)."""
    vt = p.get("validTo")
    if vt is not None:
        vt = rfc3339.parse(vt)
        if t >= vt:
            return None, None
    vf = p.get("validFrom")
    if vf is not None:
        vf = rfc3339.parse(vf)
        if t < vf:
            return None, vf
    s = p["chargingSchedule"][0]
    kind = p["chargingProfileKind"]
    rec = 0
    if kind == "Relative":
        s0 = ctx.get("tx_start")
    else:
        s0 = s.get("startSchedule")
        if s0 is not None:
            s0 = rfc3339.parse(s0)
            if kind == "Recurring":
                rec = _WEEK if p.get("recurrencyKind") == "Weekly" else _DAY
                if t > s0:
                    s0 += (t - s0) // rec * rec
    if s0 is None:
        return None, None
    # [s0, end): this run of the schedule; end None: open
    d = s.get("duration")
    end = None if d is None else s0 + d
    if rec and (end is None or end > s0 + rec):
        end = s0 + rec
    if t < s0:
        return None, _least(s0, vt)
    periods = s["chargingSchedulePeriod"]
    if end is not None and t >= end:
        # past this run: the next recurrence, or never
        return None, _least(s0 + rec if rec else None, vt)
    off = t - s0
    if off < periods[0]["startPeriod"]:
        return None, _least(s0 + periods[0]["startPeriod"], vt)
    # binary search: up to 1024 periods, ascending (K01.FR.35), and a composite asks often
    lo = 0
    hi = len(periods)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if periods[mid]["startPeriod"] <= off:
            lo = mid
        else:
            hi = mid
    nxt = end
    if hi < len(periods):
        nxt = _least(s0 + periods[hi]["startPeriod"], end)
    return periods[lo], _least(nxt, vt)


def _least(a, b):
    # min of two optional numbers, None standing for "none" (infinity)
    if a is None:
        return b
    if b is None or a < b:
        return a
    return b


def limit_at(profiles, t, ctx):
    """(amps per phase or None, phases, next change or None) at Unix time t for ctx's EVSE."""
    # best[slot] = (stackLevel, period, unit); one pass over the profiles
    best = [None] * 6
    nxt = None
    for evse, p in profiles:
        k = _slot(evse, p, ctx)
        if k < 0:
            continue
        per, n = _cover(p, t, ctx)
        nxt = _least(n, nxt)
        if per is None:
            continue
        b = best[k]
        lvl = p["stackLevel"]
        if b is None or lvl > b[0]:
            best[k] = (lvl, per, p["chargingSchedule"][0]["chargingRateUnit"])
    if best[_TX] is not None:
        best[_DEF] = best[_DEF0] = None
    elif best[_DEF] is not None:
        best[_DEF0] = None
    phases = ctx.get("phases") or 3
    for b in best:
        if b is not None:
            n = b[1].get("numberPhases", 3)
            if 0 < n < phases:  # 0 or less: nonsense the validation should have refused
                phases = n
    volts = ctx.get("voltage") or _VOLTS
    share = 1 if ctx["evse"] == 0 else ctx.get("share", 1)
    amps = ctx.get("max_a")
    for k in range(6):
        b = best[k]
        if b is None:
            continue
        a = b[1]["limit"]
        if b[2] == "W":
            a = a / (volts * phases)
        if k == _MAX or k == _EXT0:
            a = a * share
        if a < 0:
            a = 0
        if amps is None or a < amps:
            amps = a
    return amps, phases, nxt


def in_unit(amps, phases, unit, ctx):
    """amps per phase (over phases) in unit "A" or "W", rounded to 0.1 (the wire's precision);
    None stays None."""
    if amps is None:
        return None
    if unit == "W":
        amps = amps * (ctx.get("voltage") or _VOLTS) * phases
    return int(amps * 10 + 0.5) / 10


def composite(profiles, start, duration, unit, ctx):
    """GetCompositeSchedule's CompositeScheduleType for ctx's EVSE over [start, start +
    duration), limits in unit ("A" or "W"; None: "A"). Walks limit_at's change points, so that
    what it reports is what limit_at applies; equal adjacent periods are merged."""
    gen = composite_steps(profiles, start, duration, unit, ctx)
    try:
        while True:
            next(gen)
    except StopIteration as e:  # steps.run, without importing asyncio
        return e.value


def composite_steps(profiles, start, duration, unit, ctx):
    """composite as a generator (lib/steps): yields every _BATCH change points, so that a
    block can `await steps.run_async(...)` over long schedules without holding the loop."""
    unit = unit or "A"
    out = []
    last = None
    t = start
    stop = start + duration
    i = 0
    while True:
        amps, phases, nxt = limit_at(profiles, t, ctx)
        lim = in_unit(_NO_LIMIT_A if amps is None else amps, phases, unit, ctx)
        if last is None or lim != last["limit"] or phases != last["numberPhases"]:
            last = {"startPeriod": t - start, "limit": lim, "numberPhases": phases}
            out.append(last)
        if nxt is None or nxt >= stop:
            break
        t = nxt if nxt > t else t + 1  # always forward, whatever a profile says
        i += 1
        if i % _BATCH == 0:
            yield
    return {
        "evseId": ctx["evse"],
        "duration": duration,
        "scheduleStart": rfc3339.format(start),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": out,
    }
