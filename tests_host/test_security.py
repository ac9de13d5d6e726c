"""Security events raised by the security block itself: SettingSystemTime when the clock moves
by more than TimeAdjustmentReportingThreshold (critical: queued for the CSMS), and
ReconfigurationOfSecurityParameters when a security setting changes (logged, never the value)."""

import asyncio
from types import SimpleNamespace

import log
from clock import Clock
from firmware.blocks.security import Security
from firmware.device_model import DeviceModel
from firmware.variables import declarations
from store import Store


class Queue:
    def __init__(self):
        self.posted = []

    def post(self, action, payload, tx_id=None, kind=None):
        self.posted.append((action, payload))
        return True


def station(tmp_path, now=1_800_000_000):
    t = [now]
    store = Store(str(tmp_path))
    hw = SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)
    st = SimpleNamespace(
        store=store,
        dm=DeviceModel(store, declarations([hw])),
        clock=Clock(lambda: t[0]),
        queue=Queue(),
        connection=SimpleNamespace(on_accepted=[], ready=asyncio.Event()),
        boot_reason="PowerUp",
    )
    Security(st.dm, st.clock, st.queue, st.connection, st.boot_reason)
    return st


def test_a_clock_step_beyond_the_threshold_is_setting_system_time(tmp_path):
    st = station(tmp_path)
    st.clock.set(1_800_000_015)  # 15 s: within the default 20 s
    assert st.queue.posted == []
    st.clock.set(1_800_000_015 - 3600)
    assert st.queue.posted == [
        (
            "SecurityEventNotification",
            {
                "type": "SettingSystemTime",
                "timestamp": "2027-01-15T07:00:15Z",
                "techInfo": "moved -3600 s",
            },
        )
    ]
    st.dm.set("ClockCtrlr/TimeAdjustmentReportingThreshold", "0")
    st.clock.set(1_800_000_016 - 3600)
    assert st.queue.posted[-1][1]["techInfo"] == "moved +1 s"


def test_a_changed_password_is_logged_by_name_only(tmp_path, capsys):
    st = station(tmp_path)
    lines = []
    old = log._emit
    log._emit = lambda lvl, tag, msg: lines.append((tag, msg))
    try:
        st.dm.set("SecurityCtrlr/BasicAuthPassword", "0123456789abcdef0123")
    finally:
        log._emit = old
    assert (
        "security",
        "event ReconfigurationOfSecurityParameters (SecurityCtrlr/BasicAuthPassword changed)",
    ) in lines
    assert not any("0123456789abcdef0123" in m for _, m in lines)
    assert st.queue.posted == []  # log-only: not pushed to the CSMS
