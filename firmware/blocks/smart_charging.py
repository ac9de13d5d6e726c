# smart_charging: OCPP block K, charging profiles applied to the pilot: SetChargingProfile
# (K01), GetChargingProfiles (K09), ClearChargingProfile (K10), GetCompositeSchedule (K08), and
# the limit of every EVSE recomputed each second (offline too). MIT licence.
#
# The rules and the store are firmware/charging_profiles.py, the maths lib/schedule.py: this
# block wires them to the device model, the transactions and the EVSE controllers. It is lazy
# (main.py): built on the first smart-charging CALL, or at boot when profiles are on flash.
#
# Decisions: SmartChargingCtrlr.Available false answers every action with CALLERROR
# NotSupported; Enabled false rejects SetChargingProfile ("NotEnabled") and applies none of the
# CSMS's limits.
# The MaxProfile is shared equally over the EVSEs with a transaction (at least one). TxProfiles
# of a transaction that ended are dropped at the next pass (the block watches each EVSE's
# transaction id: no hook in the transactions block). Local load management
# (firmware/load_management.py) is built here while LoadManagement.Mode is not Off and the board
# has a mains meter: its limits are external constraints that apply even with Enabled false
# (they guard the site's fuse, not the CSMS's wishes). On EVSEs with a phase switch the phases
# of the applied limit (profiles' numberPhases, Solar mode's choice) are asked of the EVSE
# controller, at most once per PhaseSwitchMinInterval.

import asyncio
import time

from micropython import const

import log
import ocppj
import schedule
import steps
from firmware.charging_profiles import Profiles, check, report_parts
from firmware.queue import UPDATED

_TAG = const("smart")
_ENABLED = const("SmartChargingCtrlr/Enabled")
_AVAILABLE = const("SmartChargingCtrlr/Available")
_ENTRIES = const("SmartChargingCtrlr/Entries")
_PERIODS = const("SmartChargingCtrlr/PeriodsPerSchedule")
_STACK = const("SmartChargingCtrlr/ProfileStackLevel")
_UNITS = const("SmartChargingCtrlr/RateUnit")
_SWITCHING = const("SmartChargingCtrlr/ACPhaseSwitchingSupported")
_VOLTAGE = const("SmartChargingCtrlr/NominalVoltage")
_SIGNIFICANCE = const("SmartChargingCtrlr/LimitChangeSignificance")
_PHASE_INTERVAL = const("SmartChargingCtrlr/PhaseSwitchMinInterval")
_MODE = const("LoadManagement/Mode")
_EXTERNAL = const("ChargingStationExternalConstraints")
_TICK_MS = const(1000)  # the limits are recomputed this often
_PART_ITEMS = const(4)  # profiles per ReportChargingProfiles


class _Ctx:
    """What charging_profiles.check reads (see there)."""

    def __init__(self, evses, tx, phases, units, periods, entries, stack, switching, profiles):
        self.evses = evses
        self.tx = tx
        self.phases = phases
        self.units = units
        self.periods = periods
        self.entries = entries
        self.stack = stack
        self.switching = switching
        self.profiles = profiles


class SmartCharging:
    def __init__(self, router, session, dm, store, clock, evses, txs, spawn, ready, mains=None):
        self.session = session
        self.dm = dm
        self.clock = clock
        self.evses = evses
        self.txs = txs
        self.spawn = spawn
        self.profiles = Profiles(store)
        self.capacity = dm.decl(_ENTRIES)[3][2]  # Entries' maxLimit
        self._tx = [None] * len(evses)  # the transaction id seen on each EVSE at the last pass
        self.limits = [None] * len(evses)  # the limit applied to each EVSE (A), None: none
        self._rate = [False] * len(evses)  # a ChargingRateChanged to send at the next pass
        self._report = None  # GetChargingProfiles' parts, for the after-hook
        self._switched = [None] * len(evses)  # ticks of the last phase switch asked of each
        self._asked = [e.hw.phases for e in evses]  # the phases asked of each (3 at boot)
        self.ready = ready  # set while the link is up and Accepted (load management's reports)
        self.mains = mains  # the board's mains meter, or None
        self.load = None  # the LoadManagement while Mode is not Off
        self._no_mains = False  # the missing mains meter was logged
        dm.provide(_ENTRIES, lambda: str(self.profiles.count()))
        router.on("SetChargingProfile", self.on_set, self.after_change)
        router.on("GetChargingProfiles", self.on_get, self.after_get)
        router.on("ClearChargingProfile", self.on_clear, self.after_change)
        router.on("GetCompositeSchedule", self.on_composite)
        self._manage()
        self.apply()
        spawn(self.run())

    def _available(self):
        if not self.dm.get_bool(_AVAILABLE):
            raise ocppj.CallError(ocppj.NOT_SUPPORTED, "smart charging is not available")

    # -- SetChargingProfile (K01) -----------------------------------------------------------

    def on_set(self, req):
        self._available()
        if not self.dm.get_bool(_ENABLED):
            return ocppj.answer("Rejected", "NotEnabled", "SmartChargingCtrlr.Enabled is false")
        n = req["evseId"]
        p = req["chargingProfile"]
        r = self._check(n, p)
        if r is not None:
            log.info(_TAG, "profile %d rejected: %s" % (p["id"], r[0]))
            return ocppj.answer("Rejected", r[0], r[1])
        self.profiles.put(n, p)
        log.info(_TAG, "profile %d set on EVSE %d" % (p["id"], n))
        return ocppj.answer("Accepted")

    def _check(self, n, p):
        dm = self.dm
        ctx = _Ctx(
            len(self.evses),
            [None] + [self.txs.tx_id(e) for e in self.evses],
            [0] + [e.hw.phases for e in self.evses],
            dm.get(_UNITS),
            dm.get_int(_PERIODS),
            self.capacity,
            dm.get_int(_STACK),
            dm.get_bool(_SWITCHING),
            self.profiles,
        )
        return check(n, p, ctx)

    def _start_profile(self, b, n, tx):
        """K05: RequestStartTransaction's chargingProfile (kept on the bay by the transactions
        block) becomes a TxProfile of the transaction it started; one that breaks a rule is
        ignored (the transaction goes on, TC_K_38)."""
        p = b.profile
        b.profile = None
        if p.get("chargingProfilePurpose") != "TxProfile":
            log.warn(_TAG, "RequestStart's profile %s ignored: not a TxProfile" % p.get("id"))
            return
        p = dict(p)
        p["transactionId"] = tx
        r = self._check(n, p)
        if r is not None:
            log.warn(_TAG, "RequestStart's profile %d ignored: %s" % (p["id"], r[0]))
            return
        self.profiles.put(n, p)
        log.info(_TAG, "profile %d set on EVSE %d for transaction %s" % (p["id"], n, tx))

    def after_change(self, req, resp):
        if resp["status"] == "Accepted":
            self.apply(True)

    # -- GetChargingProfiles (K09) ----------------------------------------------------------

    def on_get(self, req):
        self._available()
        found = self.profiles.report(req["chargingProfile"], req.get("evseId"))
        if not found:
            return ocppj.answer("NoProfiles")
        self._report = (found, req["requestId"])
        return ocppj.answer("Accepted")

    def after_get(self, req, resp):
        rep, self._report = self._report, None
        if resp["status"] == "Accepted" and rep is not None:
            self.spawn(self._send(rep[0], rep[1]))

    async def _send(self, found, request_id):
        try:
            for part in report_parts(found, request_id, _PART_ITEMS):
                await self.session.call("ReportChargingProfiles", part)
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "report %d stopped: %r" % (request_id, e))

    # -- ClearChargingProfile (K10) ---------------------------------------------------------

    def on_clear(self, req):
        self._available()
        return ocppj.answer(self.profiles.clear(req))

    # -- GetCompositeSchedule (K08) ---------------------------------------------------------

    async def on_composite(self, req):
        self._available()
        n = req["evseId"]
        unit = req.get("chargingRateUnit")
        if n < 0 or n > len(self.evses):
            return ocppj.answer("Rejected", "UnknownEVSE", "evseId %d" % n)
        if unit is not None and unit not in [u.strip() for u in self.dm.get(_UNITS).split(",")]:
            return ocppj.answer("Rejected", "UnsupportedRateUnit", unit)
        ctx = self._ctx(n, self._share())
        gen = schedule.composite_steps(
            self.profiles.for_evse(n), self.clock.now(), req["duration"], unit, ctx
        )
        return {"status": "Accepted", "schedule": await steps.run_async(gen)}

    # -- the limit applied ------------------------------------------------------------------

    def _share(self):
        busy = 0
        for e in self.evses:
            if self.txs.tx_id(e) is not None:
                busy += 1
        return 1 / max(1, busy)

    def _ctx(self, n, share):
        """lib/schedule's ctx for EVSE n (0: the station)."""
        ctx = {"evse": n, "voltage": self.dm.get_int(_VOLTAGE), "share": share}
        if n == 0:
            return ctx
        e = self.evses[n - 1]
        b = self.txs.bay(e)
        tx = b.tx
        ctx["tx"] = None if tx is None else tx["id"]
        ctx["tx_start"] = None if tx is None else tx["t0"]
        ctx["max_a"] = e.max_a
        ctx["phases"] = e.hw.phases
        return ctx

    def apply(self, csms=False):
        """Recompute and hand every EVSE its limit; drop the TxProfiles of ended transactions
        and the expired profiles. csms: a CSMS call changed the profiles (no
        ChargingRateChanged then)."""
        now = self.clock.now()
        prof = self.profiles
        prof.purge(now)
        enabled = self.dm.get_bool(_ENABLED)
        share = self._share()
        for i, e in enumerate(self.evses):
            tx = self.txs.tx_id(e)
            old = self._tx[i]
            if old is not None and old != tx:
                prof.end_transaction(old)
            self._tx[i] = tx
            b = self.txs.bay(e)
            if b.profile is not None:  # K05
                if tx is not None:
                    self._start_profile(b, i + 1, tx)
                elif b.token is None:
                    b.profile = None  # the remote start came to nothing
            if self._rate[i]:
                # the change of the last pass, told once the EVSE has acted on it (its own
                # ChargingStateChanged, if any, went first)
                self._rate[i] = False
                if b.tx is not None and b.ending is None and b.stopping is None:
                    b.post(UPDATED, "ChargingRateChanged")
            ctx = self._ctx(i + 1, share)
            top = ctx["max_a"]
            mine = prof.for_evse(i + 1)
            if not enabled:  # the station's own external constraints only
                mine = [it for it in mine if it[1]["chargingProfilePurpose"] == _EXTERNAL]
            amps, phases, _ = schedule.limit_at(mine, now, ctx)
            if amps is not None and amps >= top:
                amps = None  # the hardware's own maximum: no limit of ours
            if e.hw.phase_switch is not None:
                self._phases(i, e, phases)
            last = self.limits[i]
            if amps != last:
                log.info(_TAG, "EVSE %d limit %s A" % (i + 1, amps))
                self.limits[i] = amps
                # K01: a change by more than LimitChangeSignificance that no CSMS call made
                # (a schedule period) is reported with the transaction
                if not csms and tx is not None:
                    a = top if amps is None else amps
                    was = top if last is None else last
                    sig = self.dm.get_int(_SIGNIFICANCE)
                    self._rate[i] = abs(a - was) * 100 > sig * was
            e.set_limit(amps)

    def _phases(self, i, e, phases):
        """Ask EVSE e for `phases` (1 or 3) unless it switched less than
        PhaseSwitchMinInterval ago."""
        phases = 1 if phases < 3 else 3  # a two-phase limit: one phase is what a switch has
        if phases == self._asked[i]:
            return
        ms = time.ticks_ms()
        last = self._switched[i]
        if last is not None:
            if time.ticks_diff(ms, last) < self.dm.get_int(_PHASE_INTERVAL) * 1000:
                return
        log.info(_TAG, "EVSE %d: %d phase(s)" % (i + 1, phases))
        self._switched[i] = ms
        self._asked[i] = phases
        e.set_phases(phases)

    def _manage(self):
        """Start or stop local load management as LoadManagement.Mode says."""
        on = self.dm.get(_MODE) != "Off"
        if on and self.load is None:
            if self.mains is None:
                if not self._no_mains:
                    log.error(_TAG, "load management needs a mains meter: the board has none")
                    self._no_mains = True
                return
            from firmware.load_management import LoadManagement

            log.info(_TAG, "load management on")
            self.load = LoadManagement(
                self.dm,
                self.mains,
                self.evses,
                self.profiles,
                self.session,
                self.ready,
                self.clock,
                self.spawn,
                self.apply,
            )
            self.spawn(self.load.run())
        elif not on:
            self._no_mains = False
            if self.load is not None:
                log.info(_TAG, "load management off")
                self.load.stop()
                self.load = None

    async def run(self):
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            try:
                self._manage()
                self.apply()
            except Exception as e:  # a bug here must not stop the limits for good
                log.exc(_TAG, "applying the limits", e)
