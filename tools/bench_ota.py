# bench_ota: the heap a signed update takes on the virtual wallbox, for `make bench`.
# MIT licence.
"""ota_update_peak_heap_bytes: the peak GC heap in use, above the idle heap, during a whole
signed update of the virtual wallbox (compiled .mpy, unix port, 64-bit): UpdateFirmware
accepted, the bundle (the tree at the next version, RSA-2048 signature) downloaded over HTTP
from the development CSMS in 1 KB pieces into a file while hashing, the signature verified,
the bundle unpacked into the inactive slot, up to InstallRebooting.

Measured inside the firmware by the update block (firmware/blocks/firmware_update.py): a
`gc.collect()` then `gc.mem_alloc()` as the idle baseline when the update starts; at each
step (each FirmwareStatusNotification) `gc.mem_alloc()` sampled, then `gc.collect()`; within
the steps also after every downloaded piece, after the signature check and after the unpack;
the largest sample minus the baseline is logged at InstallRebooting ("update N heap peak +B
B") and read here from the wallbox's log. Like full_inventory_peak_heap_bytes, a sample holds
the live state plus the garbage made since the last collection.

    figure(code=ROOT / "build" / "mpy") -> int bytes   (make compile first: the .mpy tree)
"""

import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import ota  # noqa: E402
from tools.harness import CsmsThread, Sim  # noqa: E402

_PATTERN = re.compile(r"update 1 heap peak \+(\d+) B")


def figure(code=ROOT / "build" / "mpy", timeout=60):
    """Bytes of heap above idle during a whole update (see the module's docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "www").mkdir()
        certs = ota.write_certs(tmp / "certs")
        bundle = tmp / "www" / "next.bundle"
        ota.build_bundle(bundle, ota.next_version(ota.current_version()))
        ota.sign_file(bundle, certs["signer.key"], certs["signer.pem"])
        csms = CsmsThread(serve=str(tmp / "www"))
        sim = None
        try:
            config = {"manufacturer_root_file": str(certs["root.pem"])}
            sim = Sim(tmp, csms.url, sid="OTAB", config=config, code=code)
            st = csms.station("OTAB", timeout=20)
            sim.wait_status(lambda s: s["registration"] == "Accepted")
            resp = csms.run(csms.csms.send_update(st, "next.bundle", request_id=1))
            if resp["status"] != "Accepted":
                raise SystemExit("UpdateFirmware answered %s" % resp["status"])
            deadline = time.monotonic() + timeout
            while True:
                m = _PATTERN.search(sim.log())
                if m:
                    return int(m.group(1))
                if time.monotonic() > deadline:
                    raise SystemExit("no update heap figure in the wallbox's log")
                time.sleep(0.2)
        finally:
            if sim is not None:
                sim.close()
            csms.stop()


if __name__ == "__main__":
    code = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "mpy"
    print("ota_update_peak_heap_bytes: %d bytes" % figure(code))
