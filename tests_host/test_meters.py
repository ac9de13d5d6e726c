"""Meter drivers: the Modbus RTU master and meter models against a scripted bus (recorded reply
frames, faults, echo, timing), and the S0 pulse meter with a fake clock; on CPython and on the
MicroPython unix port."""

import asyncio
import math
import os
import struct
import subprocess
import time
from pathlib import Path

import pytest

import fake_machine
from boards.drivers.meter_modbus import (
    AbbB23,
    Eem350,
    ModbusMaster,
    Sdm120,
    Sdm630,
    make_meter,
)
from boards.drivers.meter_s0 import S0Meter
from meter import MeterError, Reading
from modbus import ModbusError
from modbus_ref import ref_crc, with_crc

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


def run(coro, timeout=10):
    async def main():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


# --- a scripted meter on a fake UART -------------------------------------------------------------


def f32r(v):
    """v as the meter holds it: rounded to float32."""
    return struct.unpack(">f", struct.pack(">f", v))[0]


def f32_regs(regs, reg, v):
    regs[reg], regs[reg + 1] = struct.unpack(">HH", struct.pack(">f", v))


def u32_regs(regs, reg, v, low_first=False):
    hi, lo = struct.unpack(">HH", struct.pack(">i" if v < 0 else ">I", v))
    regs[reg], regs[reg + 1] = (lo, hi) if low_first else (hi, lo)


class Slave:
    """A meter: answers FC03/FC04 reads from register maps {register: 16-bit word}.

    strict: a read touching a register missing from the map gets exception 2 (illegal data
    address), as a meter without the register would answer; otherwise missing ones read 0."""

    def __init__(self, addr=1, fc=4, regs=None, strict=False):
        self.addr, self.fc, self.regs, self.strict = addr, fc, regs or {}, strict

    def answer(self, req):
        assert len(req) == 8 and ref_crc(req) == 0, req.hex()
        addr, fc, start, count = struct.unpack(">BBHH", req[:6])
        if addr != self.addr:
            return b""
        if fc != self.fc:
            return with_crc(bytes((addr, fc | 0x80, 1)))
        span = range(start, start + count)
        if self.strict and any(r not in self.regs for r in span):
            return with_crc(bytes((addr, fc | 0x80, 2)))
        data = b"".join(struct.pack(">H", self.regs.get(r, 0)) for r in span)
        return with_crc(bytes((addr, fc, 2 * count)) + data)


class Bus(fake_machine.UART):
    """fake_machine.UART with a slave behind it. Records each request, the DE level while it was
    written and when; `faults` script what happens to the next replies, in order:
    None (answer), "silent", "crc" (one bit flipped), "partial" (half the reply),
    ("exc", code), ("junk", bytes) (reply followed by extra bytes)."""

    def __init__(self, slave, de=None, faults=(), echo=False):
        super().__init__(1, baudrate=9600)
        self.slave, self.de, self.faults, self.echo = slave, de, list(faults), echo
        self.requests = []
        self.de_at_write = []
        self.write_times = []
        self.overlap = False  # a request written while the previous reply was still unread
        self.on_write = self._reply

    def _reply(self, req):
        if self.rx:
            self.overlap = True
        self.requests.append(req)
        self.write_times.append(time.monotonic())
        self.de_at_write.append(self.de.value() if self.de else None)
        out = self.slave.answer(req)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "silent":
            out = b""
        elif fault == "crc":
            out = bytearray(out)
            out[3] ^= 0x10
            out = bytes(out)
        elif fault == "partial":
            out = out[: len(out) // 2]
        elif isinstance(fault, tuple) and fault[0] == "exc":
            out = with_crc(bytes((req[0], req[1] | 0x80, fault[1])))
        elif isinstance(fault, tuple) and fault[0] == "junk":
            out = out + fault[1]
        return (req if self.echo else b"") + out

    def flush(self):
        raise AssertionError("flush() blocks the event loop; the master must poll txdone()")


def hexes(reqs):
    return [r.hex() for r in reqs]


# Recorded values: the same quantities for every meter, in each meter's encoding.
V = (230.1, 231.0, 229.5)
A = (15.97, 16.02, 15.88)
P = 11020.0
KWH = 1234.567


def sdm630_regs():
    regs = {}
    for i in range(3):
        f32_regs(regs, 0x0000 + 2 * i, V[i])
        f32_regs(regs, 0x0006 + 2 * i, A[i])
        f32_regs(regs, 0x000C + 2 * i, P / 3)
    f32_regs(regs, 0x0034, P)
    f32_regs(regs, 0x0046, 50.0)
    f32_regs(regs, 0x0048, KWH)
    return regs


def sdm120_regs():
    regs = {}
    f32_regs(regs, 0x0000, V[0])
    f32_regs(regs, 0x0006, A[0])
    f32_regs(regs, 0x000C, 3675.0)
    f32_regs(regs, 0x0048, KWH)
    return regs


def abb_regs(power_w=P):
    regs = {}
    for i in range(3):
        u32_regs(regs, 0x5B00 + 2 * i, round(V[i] * 10))
        u32_regs(regs, 0x5B0C + 2 * i, round(A[i] * 100))
    u32_regs(regs, 0x5B14, round(power_w * 100))
    e = round(KWH * 100)  # 0.01 kWh: 123457
    for i, w in enumerate(struct.unpack(">HHHH", struct.pack(">Q", e))):
        regs[0x5000 + i] = w
    return regs


def eem_regs(energy=None):
    regs = {}
    for i in range(3):
        u32_regs(regs, 0x0000 + 2 * i, round(V[i] * 10), low_first=True)
        u32_regs(regs, 0x000C + 2 * i, round(A[i] * 1000), low_first=True)
    u32_regs(regs, 0x0028, round(P * 10), low_first=True)
    u32_regs(regs, 0x003E, round(KWH * 10) if energy is None else energy, low_first=True)
    return regs


def setup(slave, faults=(), echo=False, de=True, **kw):
    pin = fake_machine.Pin("DE", fake_machine.Pin.OUT) if de else None
    bus = Bus(slave, pin, faults, echo)
    kw.setdefault("timeout_ms", 30)
    return bus, pin, ModbusMaster(bus, de=pin, **kw)


# --- meter models: requests and decoded readings -------------------------------------------------


def test_sdm630_reading_requests_and_de():
    bus, de, master = setup(Slave(regs=sdm630_regs()))
    r = run(Sdm630(master).read())
    assert isinstance(r, Reading)
    assert hexes(bus.requests) == ["01040000000cf00f", "010400340016300a"]
    assert bytes(bus.written) == b"".join(bus.requests)
    assert all(struct.unpack(">H", q[4:6])[0] <= 60 for q in bus.requests)  # Eastron limit
    assert r.voltage_v == tuple(f32r(v) for v in V)
    assert r.current_a == tuple(f32r(a) for a in A)
    assert r.power_w == P
    assert r.energy_wh == f32r(KWH) * 1000
    assert r.energy_wh == pytest.approx(1234567, abs=0.1)
    assert r.voltage_v[0] == pytest.approx(230.1, abs=1e-4)
    # DE: low at start, high while each request is written, low again after each
    assert de.history == [0, 1, 0, 1, 0]
    assert bus.de_at_write == [1, 1]


def test_sdm120_single_phase():
    bus, de, master = setup(Slave(regs=sdm120_regs()), de=False)
    r = run(Sdm120(master, addr=1).read())
    assert hexes(bus.requests) == ["01040000000e71ce", "010400480002f1dd"]
    assert r.voltage_v == (f32r(230.1), None, None)
    assert r.current_a == (f32r(15.97), None, None)
    assert r.power_w == 3675.0
    assert r.energy_wh == f32r(KWH) * 1000


def test_abb_b23_integers_scaled_exactly():
    bus, de, master = setup(Slave(fc=3, regs=abb_regs()))
    r = run(AbbB23(master).read())
    assert hexes(bus.requests) == ["01035b000016d720", "0103500000045509"]
    assert r.voltage_v == (230.1, 231.0, 229.5)
    assert r.current_a == (15.97, 16.02, 15.88)
    assert r.power_w == 11020.0
    assert r.energy_wh == 1234570 and isinstance(r.energy_wh, int)


def test_abb_b23_negative_power_is_passed_on():
    bus, de, master = setup(Slave(fc=3, regs=abb_regs(power_w=-512.25)))
    assert run(AbbB23(master).read()).power_w == -512.25  # reversed wiring: a fact to report


def test_eem350_low_word_first_one_request():
    bus, de, master = setup(Slave(regs=eem_regs()))
    r = run(Eem350(master).read())
    assert hexes(bus.requests) == ["010400000040f1fa"]
    assert r.voltage_v == (230.1, 231.0, 229.5)
    assert r.current_a == (15.97, 16.02, 15.88)
    assert r.power_w == 11020.0
    assert r.energy_wh == 1234600 and isinstance(r.energy_wh, int)


def test_other_address_and_make_meter():
    bus, de, master = setup(Slave(addr=7, regs=sdm630_regs()))
    m = make_meter("sdm630", master, 7)
    assert isinstance(m, Sdm630) and m.addr == 7
    run(m.read())
    assert [q[0] for q in bus.requests] == [7, 7]
    for kind, cls in (("sdm120", Sdm120), ("abb_b23", AbbB23), ("eem350", Eem350)):
        assert type(make_meter(kind, master, 2)) is cls
    with pytest.raises(ValueError):
        make_meter("sdm72", master, 1)


# --- signed meters (the mains meter): a phase that exports reads a negative current --------------


def req(addr, fc, start, count):
    return with_crc(struct.pack(">BBHH", addr, fc, start, count)).hex()


def test_signed_sdm630_exporting_phase_is_negative():
    regs = sdm630_regs()
    f32_regs(regs, 0x000E, -3600.0)  # L2 exports (solar on L2)
    f32_regs(regs, 0x0034, P / 3 * 2 - 3600.0)
    bus, de, master = setup(Slave(regs=regs))
    r = run(make_meter("sdm630", master, 1, signed=True).read())
    # the phase powers follow the currents: the first read grows from 12 to 18 registers
    assert hexes(bus.requests) == [req(1, 4, 0, 18), req(1, 4, 0x34, 22)]
    assert r.current_a == (f32r(A[0]), -f32r(A[1]), f32r(A[2]))
    assert r.voltage_v == tuple(f32r(v) for v in V)
    assert r.energy_wh == f32r(KWH) * 1000


def test_signed_sdm630_every_phase():
    for phase in range(3):
        regs = sdm630_regs()
        f32_regs(regs, 0x000C + 2 * phase, -1000.0)
        bus, de, master = setup(Slave(regs=regs))
        amps = run(make_meter("sdm630", master, signed=True).read()).current_a
        assert [a < 0 for a in amps] == [i == phase for i in range(3)]
        assert [abs(a) for a in amps] == [f32r(a) for a in A]


def test_signed_sdm120_takes_the_total_power_sign():
    regs = sdm120_regs()
    f32_regs(regs, 0x000C, -3675.0)
    bus, de, master = setup(Slave(regs=regs))
    r = run(make_meter("sdm120", master, 1, signed=True).read())
    assert hexes(bus.requests) == [req(1, 4, 0, 14), req(1, 4, 0x48, 2)]  # as unsigned
    assert r.current_a == (-f32r(A[0]), None, None) and r.power_w == -3675.0
    bus, de, master = setup(Slave(regs=sdm120_regs()))
    assert run(make_meter("sdm120", master, signed=True).read()).current_a[0] == f32r(A[0])


def test_signed_abb_b23_exporting_phase_is_negative():
    regs = abb_regs()
    for i, w in enumerate((3700.0, 3600.0, -2500.5)):  # L3 exports
        u32_regs(regs, 0x5B16 + 2 * i, round(w * 100))
    bus, de, master = setup(Slave(fc=3, regs=regs))
    r = run(make_meter("abb_b23", master, 1, signed=True).read())
    assert hexes(bus.requests) == [req(1, 3, 0x5B00, 28), req(1, 3, 0x5000, 4)]
    assert r.current_a == (15.97, 16.02, -15.88)
    assert r.power_w == 11020.0


def test_signed_eem350_every_phase_takes_the_total_sign():
    # No per-phase power in the map: the total's sign goes to all three phases.
    regs = eem_regs()
    u32_regs(regs, 0x0028, -4200, low_first=True)  # -420.0 W
    bus, de, master = setup(Slave(regs=regs))
    r = run(make_meter("eem350", master, 1, signed=True).read())
    assert hexes(bus.requests) == [req(1, 4, 0, 64)]  # as unsigned
    assert r.current_a == (-15.97, -16.02, -15.88) and r.power_w == -420.0
    bus, de, master = setup(Slave(regs=eem_regs()))
    assert run(make_meter("eem350", master, signed=True).read()).current_a == A


def test_signed_meter_takes_the_magnitude_of_a_signed_current():
    regs = eem_regs()
    u32_regs(regs, 0x000C, -15970, low_first=True)  # a meter that signs its currents itself
    bus, de, master = setup(Slave(regs=regs))
    assert run(make_meter("eem350", master, signed=True).read()).current_a == A


def _exporting(kind):
    # every map's registers with every phase power (and the total) negative
    if kind == "sdm630":
        regs = sdm630_regs()
        for i in range(3):
            f32_regs(regs, 0x000C + 2 * i, -1000.0)
        f32_regs(regs, 0x0034, -3000.0)
        return Slave(regs=regs)
    if kind == "sdm120":
        regs = sdm120_regs()
        f32_regs(regs, 0x000C, -1000.0)
        return Slave(regs=regs)
    if kind == "abb_b23":
        regs = abb_regs(power_w=-3000.0)
        for i in range(3):
            u32_regs(regs, 0x5B16 + 2 * i, -100000)
        return Slave(fc=3, regs=regs)
    regs = eem_regs()
    u32_regs(regs, 0x0028, -30000, low_first=True)
    return Slave(regs=regs)


UNSIGNED_REQUESTS = {
    "sdm630": [req(1, 4, 0, 12), req(1, 4, 0x34, 22)],
    "sdm120": [req(1, 4, 0, 14), req(1, 4, 0x48, 2)],
    "abb_b23": [req(1, 3, 0x5B00, 22), req(1, 3, 0x5000, 4)],
    "eem350": [req(1, 4, 0, 64)],
}


@pytest.mark.parametrize("kind", sorted(UNSIGNED_REQUESTS))
def test_unsigned_meter_unchanged_by_export(kind):
    # The EVSE meters: the same requests as before signed meters existed, currents as read.
    for m in (lambda ms: make_meter(kind, ms, 1), lambda ms: make_meter(kind, ms, 1, False)):
        bus, de, master = setup(_exporting(kind))
        r = run(m(master).read())
        assert hexes(bus.requests) == UNSIGNED_REQUESTS[kind]
        assert all(a is None or a > 0 for a in r.current_a)
        assert r.power_w < 0


@pytest.mark.parametrize("kind", sorted(UNSIGNED_REQUESTS))
def test_signed_meter_all_phases_exporting(kind):
    bus, de, master = setup(_exporting(kind))
    amps = run(make_meter(kind, master, signed=True).read()).current_a
    assert all(a is None or a < 0 for a in amps) and amps[0] is not None


def test_signed_block_refused_reads_the_phase_powers_one_by_one():
    regs = dict(STRICT_SDM630)
    for i in range(3):
        f32_regs(regs, 0x000C + 2 * i, (-500.0, 700.0, 800.0)[i])
    bus, de, master = setup(Slave(regs=regs, strict=True))
    m = make_meter("sdm630", master, signed=True)
    r = run(m.read())
    counts = [struct.unpack(">HH", q[2:6]) for q in bus.requests]
    assert counts[:2] == [(0x0000, 18), (0x0034, 22)]
    singles = (0, 2, 4, 6, 8, 10, 0x34, 0x48, 0x0C, 0x0E, 0x10)
    assert counts[2:] == [(reg, 2) for reg in singles]
    assert r.current_a == (-f32r(A[0]), f32r(A[1]), f32r(A[2]))


@pytest.mark.parametrize(
    "reg,value,what",
    [
        (0x0000, math.nan, "implausible value"),
        (0x0034, math.inf, "implausible value"),
        (0x0008, -math.inf, "implausible value"),
        (0x0048, -1.0, "implausible energy"),
    ],
)
def test_implausible_float_values_are_errors(reg, value, what):
    regs = sdm630_regs()
    f32_regs(regs, reg, value)
    bus, de, master = setup(Slave(regs=regs))
    with pytest.raises(ModbusError, match=what):
        run(Sdm630(master).read())


def test_implausible_negative_integer_energy():
    bus, de, master = setup(Slave(regs=eem_regs(energy=-5)))
    with pytest.raises(ModbusError, match="implausible energy"):
        run(Eem350(master).read())


STRICT_SDM630 = {
    r: w for r, w in sdm630_regs().items() if r < 0x0C or r in (0x34, 0x35, 0x48, 0x49)
}


def test_block_read_refused_falls_back_to_one_read_per_value():
    # A meter that rejects reads over registers it does not define (strict map): the spanning
    # block 0x0034 x 22 gets exception 2, then every value is read on its own, from then on.
    bus, de, master = setup(Slave(regs=STRICT_SDM630, strict=True))
    m = Sdm630(master)
    r = run(m.read())
    assert r.energy_wh == f32r(KWH) * 1000 and r.voltage_v[2] == f32r(229.5)
    counts = [struct.unpack(">HH", q[2:6]) for q in bus.requests]
    assert counts[:2] == [(0x0000, 12), (0x0034, 22)]
    assert counts[2:] == [(reg, 2) for reg in (0, 2, 4, 6, 8, 10, 0x34, 0x48)]
    del bus.requests[:]
    run(m.read())
    assert len(bus.requests) == 8


def test_device_failure_is_not_a_fallback():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=[("exc", 4)])
    with pytest.raises(ModbusError) as ei:
        run(Sdm630(master).read())
    assert ei.value.code == 4 and "server device failure" in str(ei.value)
    assert len(bus.requests) == 1


# --- the master: retries, faults, timing ---------------------------------------------------------


def test_timeouts_are_retried_then_reported():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=["silent"] * 5, retries=2)
    t0 = time.monotonic()
    with pytest.raises(ModbusError) as ei:
        run(master.request(1, 4, 0, 2))
    elapsed = time.monotonic() - t0
    assert len(bus.requests) == 3
    assert str(ei.value) == "address 1: no reply (3 tries)"
    assert ei.value.code is None and isinstance(ei.value, MeterError)
    assert 3 * 0.030 <= elapsed < 1.0  # bounded: tries x (gap + frame + timeout)
    assert de.history == [0] + [1, 0] * 3 and de.value() == 0


def test_no_retries():
    bus, de, master = setup(Slave(), faults=["silent"] * 5, retries=0)
    with pytest.raises(ModbusError, match=r"no reply \(1 tries\)"):
        run(master.request(1, 4, 0, 2))
    assert len(bus.requests) == 1


def test_crc_error_is_retried():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=["crc"])
    data = run(master.request(1, 4, 0, 2))
    assert bytes(data) == struct.pack(">f", 230.1)
    assert len(bus.requests) == 2
    assert bus.requests[0] == bus.requests[1]


def test_crc_error_every_time():
    bus, de, master = setup(Slave(), faults=["crc"] * 3, retries=2)
    with pytest.raises(ModbusError, match=r"bad CRC \(3 tries\)"):
        run(master.request(1, 4, 0, 2))
    assert len(bus.requests) == 3


def test_exception_reply_is_not_retried_and_keeps_its_code():
    bus, de, master = setup(Slave(), faults=[("exc", 2)], timeout_ms=500)
    t0 = time.monotonic()
    with pytest.raises(ModbusError) as ei:
        run(master.request(1, 4, 0x1000, 2))
    assert ei.value.code == 2
    assert str(ei.value) == "exception 2 (illegal data address) from address 1"
    assert len(bus.requests) == 1
    assert time.monotonic() - t0 < 0.25  # stopped at 5 bytes, did not wait for 9


def test_partial_reply_then_timeout():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=["partial"] * 2, retries=1)
    with pytest.raises(ModbusError, match=r"timeout after 14 of 29 bytes \(2 tries\)"):
        run(master.request(1, 4, 0, 12))
    assert len(bus.requests) == 2


def test_partial_reply_then_good_one():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=["partial"])
    r = run(Sdm630(master).read())
    assert r.power_w == P
    assert len(bus.requests) == 3  # block 1 twice (the partial one, then whole), block 2


def test_stale_bytes_discarded_before_sending():
    bus, de, master = setup(Slave(regs=sdm630_regs()))
    bus.rx.extend(b"\x01\x04\x04\xde\xad\xbe\xef\x00\x00")  # a late reply to an old request
    data = run(master.request(1, 4, 0, 2))
    assert bytes(data) == struct.pack(">f", 230.1)
    assert len(bus.requests) == 1


def test_extra_bytes_after_a_reply_are_stale_for_the_next_request():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=[("junk", b"\x00\xff\x13")])
    r = run(Sdm630(master).read())
    assert r.voltage_v[0] == f32r(230.1) and r.power_w == P
    assert len(bus.requests) == 2


def test_echo_of_own_request_is_dropped():
    bus, de, master = setup(Slave(fc=3, regs=abb_regs()), echo=True)
    r = run(AbbB23(master).read())
    assert r.energy_wh == 1234570 and r.voltage_v == (230.1, 231.0, 229.5)
    assert len(bus.requests) == 2


def test_echo_with_one_register_and_with_exception():
    # A 1-register reply (7 bytes) is shorter than the 8-byte echo; an exception is 5 bytes.
    bus, de, master = setup(Slave(regs={0x10: 0xBEEF}), echo=True)
    assert bytes(run(master.request(1, 4, 0x10, 1))) == b"\xbe\xef"
    bus.faults.append(("exc", 3))
    with pytest.raises(ModbusError) as ei:
        run(master.request(1, 4, 0x10, 1))
    assert ei.value.code == 3 and len(bus.requests) == 2


def test_nobody_at_the_address():
    bus, de, master = setup(Slave(addr=2, regs=sdm630_regs()), retries=1)
    with pytest.raises(ModbusError, match="no reply"):
        run(master.request(1, 4, 0, 2))  # nobody at 1: the slave at 2 keeps quiet
    assert len(bus.requests) == 2


class SlowTx(Bus):
    """The UART reports the frame sent only after a few polls; DE must stay high until then."""

    def __init__(self, *a, polls=3, **kw):
        super().__init__(*a, **kw)
        self.polls, self.left, self.de_at_poll = polls, 0, []

    def write(self, b):
        self.left = self.polls
        return super().write(b)

    def txdone(self):
        self.de_at_poll.append(self.de.value())
        if self.left:
            self.left -= 1
            return False
        return True


def test_de_stays_high_until_txdone():
    pin = fake_machine.Pin("DE", fake_machine.Pin.OUT)
    bus = SlowTx(Slave(regs=sdm630_regs()), pin, polls=3)
    master = ModbusMaster(bus, de=pin, timeout_ms=30)
    run(master.request(1, 4, 0, 2))
    assert bus.de_at_poll == [1, 1, 1, 1]  # three "not yet", then done, all with DE high
    assert pin.history == [0, 1, 0]


def test_transmission_that_never_ends_is_an_error_and_releases_de():
    pin = fake_machine.Pin("DE", fake_machine.Pin.OUT)
    bus = SlowTx(Slave(regs=sdm630_regs()), pin, polls=10**9)
    master = ModbusMaster(bus, de=pin, timeout_ms=30, retries=0)
    with pytest.raises(ModbusError, match="did not finish"):
        run(master.request(1, 4, 0, 2))
    assert pin.value() == 0


def test_gap_between_frames():
    bus, de, master = setup(Slave(regs=sdm630_regs()))

    async def main():
        for _ in range(3):
            await master.request(1, 4, 0, 2)

    run(main())
    gaps = [b - a for a, b in zip(bus.write_times, bus.write_times[1:], strict=False)]
    # 3.5 characters of 11 bits at 9600 baud is 4.01 ms; plus the 8-byte request's 9.2 ms
    assert all(g >= 0.0040 + 0.0090 for g in gaps), gaps


@pytest.mark.parametrize(
    "baud,gap,expect_ms",
    [(9600, None, 5), (2400, None, 17), (19200, None, 3), (38400, None, 2), (115200, None, 2)],
)
def test_gap_from_baudrate(baud, gap, expect_ms):
    # 11 bits/char: 9600 -> 4.01 ms, 2400 -> 16.04 ms, 19200 -> 2.01 ms (rounded up to whole
    # ms); above 19200 the fixed 1.75 ms
    m = ModbusMaster(Bus(Slave()), baudrate=baud, frame_gap_ms=gap)
    assert m._gap_ms == expect_ms
    assert ModbusMaster(Bus(Slave()), baudrate=baud, frame_gap_ms=10)._gap_ms == 10


def test_one_request_at_a_time():
    bus, de, master = setup(Slave(regs=sdm630_regs()))
    m1, m2 = Sdm630(master), Sdm630(master)

    async def copy():
        # The data is a view into the master's buffer: copy it before the next await.
        return bytes(await master.request(1, 4, 0, 2))

    async def main():
        return await asyncio.gather(m1.read(), m2.read(), copy())

    r1, r2, raw = run(main())
    assert not bus.overlap
    assert len(bus.requests) == 5
    assert r1.power_w == r2.power_w == P and raw == struct.pack(">f", 230.1)


def test_cancelled_request_leaves_the_bus_usable():
    bus, de, master = setup(Slave(regs=sdm630_regs()), faults=["silent"], timeout_ms=1000)

    async def main():
        t = asyncio.create_task(master.request(1, 4, 0, 2))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert de.value() == 0
        return await asyncio.wait_for(master.request(1, 4, 0, 2), 1)

    assert bytes(run(main())) == struct.pack(">f", 230.1)


def test_impossible_request_is_a_value_error():
    bus, de, master = setup(Slave())
    with pytest.raises(ValueError):
        run(master.request(0, 4, 0, 2))
    with pytest.raises(ValueError):
        run(master.request(1, 4, 0, 126))
    assert bus.requests == []


# --- S0 pulse meter ------------------------------------------------------------------------------


class Ticks:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def s0(**kw):
    pin = fake_machine.Pin("S0", fake_machine.Pin.IN)
    clock = Ticks()
    m = S0Meter(pin, ticks=clock, **kw)

    def pulse(after_ms):
        clock.t += after_ms
        pin.fire()

    return m, pin, clock, pulse


def read(m):
    return run(m.read())


def test_s0_counts_falling_edges_and_filters_bounce():
    m, pin, clock, pulse = s0()
    assert pin.trigger == fake_machine.Pin.IRQ_FALLING
    assert pin.handler == m._pulse
    assert read(m).energy_wh == 0 and read(m).power_w == 0
    pulse(0)
    pulse(5)  # bounce: 5 ms after the accepted edge, under min_interval_ms=20
    pulse(14)  # still bounce (19 ms)
    r = read(m)
    assert r.energy_wh == 1 and isinstance(r.energy_wh, int)
    assert r.power_w == 0  # one pulse: no interval yet
    assert r.current_a == (None, None, None) and r.voltage_v == (None, None, None)
    for _ in range(9):
        pulse(327)
    r = read(m)
    assert r.energy_wh == 10
    assert r.power_w == pytest.approx(3.6e6 / 327)  # 11009 W at 1000 imp/kWh


def test_s0_trigger_is_configurable_and_deinit():
    pin = fake_machine.Pin("S0", fake_machine.Pin.IN)
    m = S0Meter(pin, trigger=fake_machine.Pin.IRQ_RISING)
    assert pin.trigger == fake_machine.Pin.IRQ_RISING
    m.deinit()
    assert pin.handler is None


def test_s0_power_decays_then_zero_and_restarts_after_two_pulses():
    m, pin, clock, pulse = s0()
    pulse(0)
    pulse(500)  # 7200 W
    assert read(m).power_w == pytest.approx(7200)
    clock.t += 500
    assert read(m).power_w == pytest.approx(7200)  # exactly one interval: still the last power
    clock.t += 500  # 1000 ms without a pulse: the load draws at most 3600 W
    assert read(m).power_w == pytest.approx(3600)
    clock.t += 501  # over 3 x 500 ms: idle
    assert read(m).power_w == 0
    clock.t += 10**6
    assert read(m).power_w == 0
    pulse(100)  # the interval ending here spans the idle time: not a power
    assert read(m).power_w == 0
    pulse(250)
    assert read(m).power_w == pytest.approx(14400)
    assert read(m).energy_wh == 4


def test_s0_fractional_pulses():
    m, pin, clock, pulse = s0(imp_per_kwh=800, min_interval_ms=0)
    pulse(0)
    assert read(m).energy_wh == 1.25
    for _ in range(3):
        pulse(100)
    r = read(m)
    assert r.energy_wh == 5 and isinstance(r.energy_wh, int)
    assert r.power_w == pytest.approx(3.6e9 / (800 * 100))
    m, pin, clock, pulse = s0(imp_per_kwh=100)
    pulse(0)
    assert read(m).energy_wh == 10


def test_s0_load_base():
    m, pin, clock, pulse = s0(load=lambda: 5000)
    pulse(0)
    assert read(m).energy_wh == 5001
    for bad in (None, -3, "12", True, math.nan):
        m, pin, clock, pulse = s0(load=lambda bad=bad: bad)
        assert read(m).energy_wh == 0


def test_s0_saves_every_100_wh_while_charging():
    saves = []
    m, pin, clock, pulse = s0(save=saves.append)

    async def charge():
        for _ in range(10000):  # 10 kWh at 11 kW, a read after every pulse
            pulse(327)
            await m.read()

    run(charge(), timeout=60)
    assert saves == list(range(100, 10001, 100))


def test_s0_saves_every_15_minutes_at_low_power():
    saves = []
    m, pin, clock, pulse = s0(save=saves.append)

    async def trickle():
        for s in range(2 * 3600 // 10):  # 2 hours, a read every 10 s, a pulse a minute (60 W)
            if s % 6 == 0:
                pulse(10000)
            else:
                clock.t += 10000
            await m.read()

    run(trickle())
    assert len(saves) == 8  # 2 h / 15 min
    assert saves == sorted(saves) and saves[-1] <= 120


def test_s0_no_energy_no_saves_and_flush():
    saves = []
    m, pin, clock, pulse = s0(load=lambda: 777, save=saves.append)
    for _ in range(100):
        clock.t += 60000
        read(m)
    assert saves == []
    m.flush()
    assert saves == []  # nothing new to save
    pulse(10)
    pulse(300)
    read(m)
    assert saves == [779]  # 2 Wh, but the last save is 100 minutes old
    pulse(300)
    read(m)
    assert saves == [779]  # 1 Wh and 0.3 s later: under both thresholds
    m.flush()
    assert saves == [779, 780]
    m.flush()
    assert saves == [779, 780]


def test_s0_failed_save_is_logged_not_raised():
    def save(wh):
        raise OSError(28, "ENOSPC")

    m, pin, clock, pulse = s0(save=save)
    for _ in range(150):
        pulse(100)
    assert read(m).energy_wh == 150
    m.flush()


# --- on MicroPython ------------------------------------------------------------------------------

MP_SCRIPT = r"""
import asyncio, micropython, struct, time
from boards.drivers.meter_modbus import ModbusMaster, make_meter
from boards.drivers.meter_s0 import S0Meter

class Uart:
    # any/readinto/write/txdone; replies come from canned frames keyed by request
    def __init__(self, replies):
        self.replies, self.rx, self.sent = replies, bytearray(), []
    def write(self, b):
        self.sent.append(bytes(b).hex())
        self.rx.extend(self.replies.get(bytes(b), b""))
        return len(b)
    def any(self):
        return len(self.rx)
    def readinto(self, buf, n):
        n = min(n, len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n
    def txdone(self):
        return True

class Pin:
    IRQ_FALLING = 2
    def __init__(self):
        self.levels = []
    def value(self, v=None):
        self.levels.append(v)
    def irq(self, handler=None, trigger=None):
        self.handler = handler

def bits(v):
    return v if v is None or isinstance(v, int) else struct.pack(">d", v).hex()

async def main():
    for kind, signed, replies in CASES:
        de = Pin()
        uart = Uart({bytes.fromhex(k): bytes.fromhex(v) for k, v in replies.items()})
        m = make_meter(kind, ModbusMaster(uart, de=de, timeout_ms=30), 1, signed)
        r = await m.read()
        print(kind, " ".join(uart.sent), de.levels, bits(r.energy_wh), bits(r.power_w),
              [bits(x) for x in r.current_a], [bits(x) for x in r.voltage_v])
    uart = Uart({})
    try:
        await ModbusMaster(uart, timeout_ms=20, retries=1).request(1, 4, 0, 2)
    except Exception as e:
        print(type(e).__name__, e, len(uart.sent))

asyncio.run(main())

# The S0 pulse handler allocates nothing (it would be allowed to on ESP32, soft IRQ, but a
# hard-IRQ port or PCNT callback must not).
t = [0]
def ticks():
    return t[0]
pin = Pin()
s0 = S0Meter(pin, ticks=ticks)
def pulses():
    for _ in range(5):
        t[0] += 300
        pin.handler(pin)
    t[0] += 3
    pin.handler(pin)
def locked(fn):  # no global is created in here: a new one would grow the module dict
    micropython.heap_lock()
    try:
        fn()
        return "OK"
    except MemoryError:
        return "ALLOCATES"
    finally:
        micropython.heap_unlock()
res = locked(pulses)
r = asyncio.run(s0.read())
print("s0", res, r.energy_wh, bits(r.power_w))
"""


def test_meters_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    cases = []
    expected = []
    for kind, signed, slave in (
        ("sdm630", False, Slave(regs=sdm630_regs())),
        ("sdm120", False, Slave(regs=sdm120_regs())),
        ("abb_b23", False, Slave(fc=3, regs=abb_regs())),
        ("eem350", False, Slave(regs=eem_regs())),
        ("sdm630", False, Slave(regs=STRICT_SDM630, strict=True)),  # block refused
        ("sdm630", True, _exporting("sdm630")),  # mains meters: negative currents
        ("sdm120", True, _exporting("sdm120")),
        ("abb_b23", True, _exporting("abb_b23")),
        ("eem350", True, _exporting("eem350")),
    ):
        bus, de, master = setup(slave)
        r = run(make_meter(kind, master, 1, signed).read())
        cases.append((kind, signed, {q.hex(): slave.answer(q).hex() for q in bus.requests}))

        def bits(v):
            return v if v is None or isinstance(v, int) else struct.pack(">d", v).hex()

        n = len(bus.requests)
        if slave.strict:
            assert n == 10
            expected.append(
                " W meter: address 1 refuses block reads (exception 2 (illegal data address)"
                " from address 1): one read per value"
            )
        expected.append(
            "%s %s %r %s %s %s %s"
            % (
                kind,
                " ".join(hexes(bus.requests)),
                [0] + [1, 0] * n,
                bits(r.energy_wh),
                bits(r.power_w),
                [bits(x) for x in r.current_a],
                [bits(x) for x in r.voltage_v],
            )
        )
    expected.append("ModbusError address 1: no reply (2 tries) 2")
    expected.append("s0 OK 5 %s" % struct.pack(">d", 3.6e6 / 300).hex())
    script = tmp_path / "mp_meters.py"
    script.write_text("CASES = %r\n%s" % (cases, MP_SCRIPT))
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == expected
