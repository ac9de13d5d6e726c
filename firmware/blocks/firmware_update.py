# firmware_update: OCPP block L, signed firmware updates (L01): UpdateFirmware, the download,
# the signature check, the install into the inactive slot, the report after the reboot.
# MIT licence.
"""Signed firmware update.

The update's state is the store document "firmware", written at every step, so a power loss
anywhere resumes or ends the update cleanly:

    {"v": 1, "id": requestId, "step": step, "status": the last FirmwareStatusNotification
     status, "sent": whether the CSMS has it, "req": {"url", "retrieve", "install" (Unix s or
     None), "retries", "interval", "cert" (PEM), "sig" (base64)}, "tries": download attempts
     started, "installs": install attempts started, "kind": "bundle"|"image", "slot": the slot
     (bundle) or partition label (image) installed into, "reboots": reboots into it}

step  download  waiting for retrieveDateTime or downloading; after a power loss the download
                starts again (DownloadFailed once `retries` extra attempts are used)
      verify    a bundle is downloaded whole (fw.bin); its signature is checked again after a
                power loss (an image is in the partition: a power loss sends it back to download)
      install   verified; waiting for installDateTime and idle EVSEs, or installing (a power loss
                while installing: the old code still boots; one more try, then InstallationFailed)
      reboot    installed and rebooting; after the boot, once Accepted: Installed when the new
                code runs, else InstallVerificationFailed (it was rolled back)
      done      finished; `status` goes to the CSMS once if it has not yet (also after a reboot)

Artifacts: an application bundle (lib/bundle.py: magic header and manifest) is downloaded into
a file and unpacked into the inactive slot of lib/bootsel.py, which boots it on trial; a full
ESP32 image (first byte 0xE9) goes straight into the next OTA partition while downloading (the
board's app_partition()), and set_boot() marks it once its signature is verified.
"""

import asyncio
import binascii
import gc
import hashlib
import os

import bootsel
import log
import ocppj
import rfc3339
import store
from firmware.version import VERSION

# bundle, httpc, steps and x509 (with asn1, rsa, ecdsa, sha2, url) are imported inside the
# functions of an update, never at module level: the boot, the trial slot's watch and its
# confirmation need none of them, and an idle station should not keep their heap. MicroPython
# keeps a module once imported, so each later import is a dict lookup.

# The heap an update takes above the idle heap (logged; tools/bench_ota.py reads it):
# MicroPython only, as in the reports block.
if hasattr(gc, "mem_alloc"):
    _mem_alloc, _collect = gc.mem_alloc, gc.collect
else:
    _mem_alloc, _collect = (lambda: 0), (lambda: None)

_STORE = "firmware"
_TAG = "fw"
_FILE = "/fw.bin"  # the downloaded bundle, beside the store's documents
_PART = "/fw.part"  # ... while it downloads
_CHUNK = 1024  # download buffer
_PROBE_CHUNKS = 8  # heap sampled, then collected, every this many pieces downloaded
_HTTP_TIMEOUT_MS = 30000  # per network wait of a download
_BACK_MS = 30000  # the most an update waits for the link after a download that closed it
_MAX_INSTALLS = 2  # install attempts (a power loss during one starts another)
_MAX_REBOOTS = 2  # reboots into an installed slot before giving up on it
_TRIAL_S = 600  # a trial slot not Accepted within this long reboots (and so may roll back)
_RESUME_WAIT_MS = 30000  # after a power loss, how long an update waits to be online again
_ROOT = "ManufacturerRootCertificate"
_ALLOW_NEW = "ChargingStation/AllowNewSessionsPendingFirmwareUpdate"
_CHECK_ROOM = 6144  # bytes kept free for the signing certificate's check: a root and its check
_NO_ROOT = "no trusted root: "  # x509.chain_steps' message when no root fits
_BUNDLE = "bundle"  # bundle.BUNDLE and bundle.IMAGE, the update record's "kind", known here
_IMAGE = "image"  # without importing bundle (test_firmware_update checks they agree)
_FINAL = ("done",)
_CANCELLABLE = ("download", "verify", "install")  # ... until Installing was sent

DOWNLOAD_SCHEDULED = "DownloadScheduled"
DOWNLOADING = "Downloading"
DOWNLOADED = "Downloaded"
DOWNLOAD_FAILED = "DownloadFailed"
SIGNATURE_VERIFIED = "SignatureVerified"
INVALID_SIGNATURE = "InvalidSignature"
INSTALL_SCHEDULED = "InstallScheduled"
INSTALLING = "Installing"
INSTALL_REBOOTING = "InstallRebooting"
INSTALLED = "Installed"
INSTALLATION_FAILED = "InstallationFailed"
INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"


class _Stop(Exception):
    """The update ended (its final status is recorded)."""


class FirmwareUpdate:
    def __init__(
        self,
        router,
        session,
        connection,
        store,
        clock,
        board,
        spawn,
        reboot,
        security,
        certificates,
        availability,
        transactions,
        dm,
    ):
        """board: its firmware image capabilities (boards.Board: app_partition, running_app,
        confirm_app); reboot(reason): the station's (async) reboot, main.Station.reboot."""
        self.session = session
        self.connection = connection
        self.store = store
        self.clock = clock
        self.board = board
        self.spawn = spawn
        self.reboot = reboot
        self.security = security
        self.certificates = certificates
        self.availability = availability
        self.transactions = transactions
        self.dm = dm
        self.base = store.root
        self.doc = self.store.load(_STORE)
        if self.doc is not None and self.doc.get("v") != 1:
            log.warn(_TAG, "update record of an unknown format dropped")
            self.doc = None
        self._task = None
        self._sending = False
        self._held = False
        self._installing = False  # Installing was sent: no cancel any more
        self._new = None  # the accepted request's settings, from the handler to its after-hook
        self._heap = None  # [idle heap when the update started, peak above it], this boot
        # An install rebooted into this boot: its result is reported once Accepted.
        self._rebooted = self.doc is not None and self.doc["step"] == "reboot"
        router.on("UpdateFirmware", self.on_update, self._after_update)
        connection.on_accepted.append(self._accepted)
        connection.on_online.append(lambda offline_ms: self._kick())
        if self._on_trial():
            spawn(self._trial_watch())
        self._resume()

    # -- state ----------------------------------------------------------------------------

    def _save(self):
        self.store.save(_STORE, self.doc)

    def status(self):
        """(status, requestId) for TriggerMessage: ("Idle", None) unless an update runs."""
        d = self.doc
        if d is None or d["step"] in _FINAL:
            return "Idle", None
        return d["status"], d["id"]

    def _path(self, name):
        return self.base + name

    def _remove_files(self):
        for name in (_FILE, _PART):
            store.remove_file(self._path(name))

    # -- UpdateFirmware (L01) ------------------------------------------------------------------

    async def on_update(self, req):
        fw = req["firmware"]
        if not fw.get("signingCertificate") or not fw.get("signature"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsignedFirmware"}}
        why = await self._check_certificate(fw["signingCertificate"])
        if why:
            log.warn(_TAG, "signing certificate refused: %s" % why)
            self.security.event("InvalidFirmwareSigningCertificate", why)
            return {"status": "InvalidCertificate"}
        try:
            retrieve = rfc3339.parse(fw["retrieveDateTime"])
            install = rfc3339.parse(fw["installDateTime"]) if "installDateTime" in fw else None
        except ValueError:
            raise ocppj.CallError(ocppj.FORMAT_VIOLATION, "bad date-time")
        self._new = {
            "url": fw["location"],
            "retrieve": retrieve,
            "install": install,
            "retries": req.get("retries", 0),
            "interval": req.get("retryInterval", 0),
            "cert": fw["signingCertificate"],
            "sig": fw["signature"],
        }
        if self._busy():
            if not self._cancellable():
                return {"status": "Rejected", "statusInfo": {"reasonCode": "UpdateInProgress"}}
            self._cancel()
            return {"status": "AcceptedCanceled"}
        return {"status": "Accepted"}

    def _after_update(self, req, resp):
        if resp["status"] not in ("Accepted", "AcceptedCanceled"):
            return
        self.doc = {
            "v": 1,
            "id": req["requestId"],
            "step": "download",
            "status": None,
            "sent": True,
            "req": self._new,
            "tries": 0,
            "installs": 0,
            "reboots": 0,
        }
        self._new = None
        self._save()
        self._start()

    async def _check_certificate(self, pem):
        """None when the signing certificate is good (valid now, issued directly by an
        installed manufacturer root), else why not."""
        # Room for a root's parse and check, held while the imports and the signing
        # certificate's parse scatter their objects (this block has just loaded too): an
        # RSA-4096 root wants blocks of 1 KB, which a fragmented heap may no longer have.
        try:
            room = bytearray(_CHECK_ROOM)
        except MemoryError:
            room = None
        import steps
        import x509

        try:
            try:
                cert = x509.load_pem(pem)[0]
            except MemoryError:
                if room is None:
                    raise
                room = None
                cert = x509.load_pem(pem)[0]
        except x509.CertError as e:
            return "unreadable: %s" % e
        room = None  # given back: the roots' parse and the check allocate there
        if not self.certificates.installed(_ROOT):
            return "no ManufacturerRootCertificate installed"
        # The candidate roots (by the issuer's name) one at a time, each checked then dropped:
        # the heap never holds more than one root and one check.
        errors = []
        for root in self.certificates.issuers(_ROOT, cert):
            _collect()  # an RSA-4096 check wants blocks of 1 KB: the heap at its best
            try:
                await steps.run_async(x509.chain_steps((cert,), (root,), self.clock.now()))
                return None
            except x509.CertError as e:
                why = str(e)
                if not why.startswith(_NO_ROOT):
                    return why  # the certificate's own fault, whatever the root
                errors.append(why[len(_NO_ROOT) :])
            root = None
        return _NO_ROOT + ("; ".join(errors) or "issuer unknown")

    def _busy(self):
        return self.doc is not None and self.doc["step"] not in _FINAL

    def _cancellable(self):
        return self.doc["step"] in _CANCELLABLE and not self._installing

    def _cancel(self):
        log.info(_TAG, "update %s cancelled" % self.doc["id"])
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._hold(False)
        self._remove_files()
        self.doc = None
        self.store.remove(_STORE)

    # -- running ------------------------------------------------------------------------------

    def _resume(self):
        d = self.doc
        if d is None:
            return
        step = d["step"]
        log.info(_TAG, "update %s found at step %s" % (d["id"], step))
        if step in ("download", "verify", "install"):
            self.spawn(self._later())
        # reboot: decided once Accepted; done: its status goes out once online.

    async def _later(self):
        # Let the CSMS hear the steps: wait (a while) to be online before going on.
        try:
            await asyncio.wait_for_ms(self.connection.ready.wait(), _RESUME_WAIT_MS)
        except asyncio.TimeoutError:
            pass
        if self._task is None and self.doc is not None and self.doc["step"] != "done":
            self._start()

    def _start(self):
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        _collect()
        self._heap = [_mem_alloc(), 0]
        try:
            d = self.doc
            if d["step"] == "verify" and d.get("kind") != _BUNDLE:
                d["step"] = "download"  # an image is checked while in RAM: fetch it again
            if d["step"] == "download":
                await self._download()
            if d["step"] == "verify":
                await self._verify(None)
            if d["step"] == "install":
                await self._install()
        except _Stop:
            pass
        except Exception as e:  # a bug must not leave the EVSEs held
            log.exc(_TAG, "update failed", e)
            self._hold(False)
            try:
                await self._finish(INSTALLATION_FAILED)
            except _Stop:
                pass

    def _probe(self):
        # Heap in use above the idle heap now: what the step left live plus its garbage.
        h = self._heap
        if h is not None:
            h[1] = max(h[1], _mem_alloc() - h[0])

    def _probe_collect(self):
        self._probe()
        _collect()  # bounds the garbage a long step leaves, also on the device

    def _probe_report(self):
        h = self._heap
        if h is not None:
            log.info(_TAG, "update %d heap peak +%d B" % (self.doc["id"], h[1]))

    async def _notify(self, status):
        self._probe()
        _collect()  # each step starts on a collected heap, as each report part does
        d = self.doc
        d["status"] = status
        d["sent"] = False
        self._save()
        log.info(_TAG, "status %s (request %d)" % (status, d["id"]))
        await self._send()

    async def _send(self):
        """Send the recorded status unless the CSMS has it. Offline it waits: the next
        connection sends the latest status only (on_online)."""
        d = self.doc
        if d is None or d["sent"] or self._sending:
            return
        if not self.connection.ready.is_set():
            return
        status = d["status"]
        self._sending = True
        try:
            await self.session.call(
                "FirmwareStatusNotification", {"status": status, "requestId": d["id"]}
            )
        except ocppj.CallError as e:
            log.warn(_TAG, "FirmwareStatusNotification refused: %r" % e)  # not sent again
        except (asyncio.TimeoutError, ocppj.NotConnected) as e:
            log.warn(_TAG, "FirmwareStatusNotification: %r" % e)
            return
        finally:
            self._sending = False
        if self.doc is d and d["status"] == status:
            d["sent"] = True
            self._save()
        elif self.doc is d:
            await self._send()  # a newer status came meanwhile

    def _kick(self):
        d = self.doc
        if d is not None and not d["sent"]:
            self.spawn(self._send())

    async def _finish(self, status):
        self._remove_files()
        self.doc["step"] = "done"
        await self._notify(status)
        self._probe_report()
        raise _Stop()

    async def _until(self, t):
        while True:
            left = t - self.clock.now()
            if left <= 0:
                return
            await asyncio.sleep_ms(min(left, 1) * 1000)

    # -- download -----------------------------------------------------------------------------

    async def _download(self):
        d = self.doc
        r = d["req"]
        if self.clock.now() < r["retrieve"]:
            await self._notify(DOWNLOAD_SCHEDULED)
            await self._until(r["retrieve"])
        # A board that holds one TLS connection (boards.Board.tls_links: an ESP32 without
        # PSRAM) cannot download over https:// beside a wss:// CSMS link: the link closes for
        # the download and opens again after it. (http:// needs no such pause, and is as safe:
        # the signature, not the transport, vouches for the file.)
        alone = r["url"][:6] == "https:" and self.board.tls_links == 1 and self.connection.tls
        while True:
            if d["tries"] > r["retries"]:  # all used, the last one by a power loss perhaps
                await self._finish(DOWNLOAD_FAILED)
            d["tries"] += 1
            await self._notify(DOWNLOADING)
            try:
                if alone:
                    await self.connection.away()
                digest, kind, writer = await self._fetch(r["url"])
                break
            except Exception as e:  # network, HTTP, timeout, file system, partition
                log.warn(_TAG, "download attempt %d failed: %r" % (d["tries"], e))
                self._remove_files()
            finally:
                if alone:
                    self.connection.back()
            if d["tries"] > r["retries"]:
                await self._finish(DOWNLOAD_FAILED)
            await asyncio.sleep_ms(r["interval"] * 1000)
        if writer is not None:
            d["slot"] = writer.label()
        else:
            os.rename(self._path(_PART), self._path(_FILE))
            import bundle

            with open(self._path(_FILE), "rb") as f:
                kind = bundle.kind(f.read(8)) or "unknown"
        d["kind"] = kind
        d["step"] = "verify"
        if alone:  # the link back first, so that Downloaded is sent, not skipped
            try:
                await asyncio.wait_for_ms(self.connection.ready.wait(), _BACK_MS)
            except asyncio.TimeoutError:
                pass  # then it waits for the link, as any status offline
        await self._notify(DOWNLOADED)
        await self._verify(digest)

    async def _fetch(self, url):
        """Download url: a bundle (or anything but an image) into fw.part, an image into the
        board's next app partition, hashing as it comes. (SHA-256 object, kind, writer)."""
        import httpc

        h = hashlib.sha256()
        resp = await httpc.get(url, timeout_ms=_HTTP_TIMEOUT_MS)
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        out = writer = kind = None
        k = 0  # pieces so far
        try:
            while True:
                n = await resp.readinto(buf)
                if not n:
                    break
                chunk = mv[:n]
                if kind is None:
                    # An image starts with 0xE9; anything else goes to the file, its kind
                    # read from the file's head afterwards.
                    kind = _IMAGE if chunk[0] == 0xE9 else _BUNDLE
                    part = None
                    if kind == _IMAGE:
                        part = self.board.app_partition()
                    if part is not None:
                        from ota_image import Writer

                        writer = Writer(part)
                    else:
                        out = open(self._path(_PART), "wb")
                h.update(chunk)
                if writer is not None:
                    writer.write(chunk)
                else:
                    out.write(chunk)
                k += 1
                if not k % _PROBE_CHUNKS:
                    self._probe_collect()
                await asyncio.sleep_ms(0)
        finally:
            resp.close()
            if out is not None:
                out.close()
        if kind is None:
            raise httpc.HttpError("empty file")
        if writer is not None:
            writer.finish()
        return h, kind, writer

    # -- signature ----------------------------------------------------------------------------

    async def _verify(self, digest):
        """Check the signature over the downloaded file (digest: its SHA-256 object, or None
        to hash the file again)."""
        import steps
        import x509

        d = self.doc
        r = d["req"]
        ok = False
        f = None
        try:
            cert = x509.load_pem(r["cert"])[0]
            sig = binascii.a2b_base64(r["sig"])
            if digest is None:
                f = open(self._path(_FILE), "rb")
            data = f if digest is None else digest
            ok = await steps.run_async(x509.data_signature_steps(cert, data, sig, "sha256"))
            self._probe()
        except (ValueError, OSError) as e:  # CertError, bad base64, file gone
            log.warn(_TAG, "signature check: %r" % e)
        finally:
            if f is not None:
                f.close()
        if not ok:
            self.security.event("InvalidFirmwareSignature", "request %d" % d["id"])
            await self._finish(INVALID_SIGNATURE)
        d["step"] = "install"
        await self._notify(SIGNATURE_VERIFIED)

    # -- install ------------------------------------------------------------------------------

    def _hold(self, on):
        if on != self._held:
            self._held = on
            self.availability.hold(on)

    async def _install(self):
        d = self.doc
        when = d["req"]["install"]
        scheduled = False
        if when is not None and self.clock.now() < when:
            await self._notify(INSTALL_SCHEDULED)
            scheduled = True
            await self._until(when)
        # No new session while installing: idle EVSEs go Unavailable, at once unless new
        # sessions may start while the install waits for the running ones to end.
        if not self.dm.get_bool(_ALLOW_NEW):
            self._hold(True)
        if not self.transactions.idle():
            log.info(_TAG, "install waits for the transactions to end")
            if not scheduled:
                await self._notify(INSTALL_SCHEDULED)
            while not self.transactions.idle():
                await asyncio.sleep_ms(1000)
        self._hold(True)  # in the turn that found them idle: no session starts in between
        if d["installs"] >= _MAX_INSTALLS:
            self._hold(False)
            await self._finish(INSTALLATION_FAILED)
        d["installs"] += 1
        self._installing = True
        await self._notify(INSTALLING)
        try:
            await self._put()
        except Exception as e:
            log.warn(_TAG, "install failed: %r" % e)
            self._installing = False
            self._hold(False)
            await self._finish(INSTALLATION_FAILED)
        d["step"] = "reboot"
        self._remove_files()
        await self._notify(INSTALL_REBOOTING)
        self._probe_report()
        await self._reboot()

    async def _put(self):
        d = self.doc
        kind = d.get("kind")
        if kind == _BUNDLE:
            import bundle

            if bootsel.root is None:
                raise OSError("no boot selector on this station")
            slot = bootsel.inactive()
            dest = bootsel.slot_dir(bootsel.root, slot)
            m = await bundle.install(self._path(_FILE), dest, self._probe_collect)
            self._probe()
            log.info(_TAG, "version %s installed in slot %s" % (m["version"], slot))
            d["slot"] = slot
            self._save()
            bootsel.set_trial(slot)
        elif kind == _IMAGE:
            part = self.board.app_partition()
            if part is None:
                raise OSError("this board takes no firmware image")
            from ota_image import Writer

            w = Writer(part)
            if w.label() != d.get("slot"):
                raise OSError("the image is not in the next partition")
            w.set_boot()
        else:
            raise OSError("unknown kind of file")

    async def _reboot(self):
        d = self.doc
        d["reboots"] += 1
        self._save()
        await self.reboot("FirmwareUpdate")

    # -- after the reboot ---------------------------------------------------------------------

    def _accepted(self):
        # The CSMS accepted this boot: the code running now is good.
        if bootsel.confirm():
            log.info(_TAG, "slot %s confirmed" % bootsel.running)
        self.board.confirm_app()
        d = self.doc
        if self._rebooted and d is not None and d["step"] == "reboot":
            self._rebooted = False
            self.spawn(self._report_install())

    def _new_code_runs(self):
        d = self.doc
        if d.get("kind") == _IMAGE:
            return self.board.running_app() == d.get("slot")
        return bootsel.running == d.get("slot")

    async def _report_install(self):
        d = self.doc
        try:
            if self._new_code_runs():
                log.info(_TAG, "version %s runs" % VERSION)
                self.security.event("FirmwareUpdated", "version " + VERSION)
                await self._finish(INSTALLED)
            slot = d.get("slot")
            if (
                d.get("kind") == _BUNDLE
                and not bootsel.failed(slot)
                and d["reboots"] < _MAX_REBOOTS
            ):
                # The power went before the slot was set to boot: set it, boot it.
                log.warn(_TAG, "slot %s was not booted: booting it" % slot)
                bootsel.set_trial(slot)
                await self._reboot()
                return
            log.warn(_TAG, "the new firmware did not start: %s still runs" % VERSION)
            self.security.event("FirmwareUpdated", "rolled back to " + VERSION)
            await self._finish(INSTALL_VERIFICATION_FAILED)
        except _Stop:
            pass

    def _on_trial(self):
        """This boot runs an update on trial: a bundle slot the boot selector tries, or an
        image an install of ours rebooted into (the ESP32 rolls it back at the next reset
        unless it is confirmed, as _accepted does once the CSMS accepts the boot)."""
        if bootsel.trial:
            return True
        d = self.doc
        return (
            self._rebooted and d is not None and d["step"] == "reboot" and d.get("kind") == _IMAGE
        )

    async def _trial_watch(self, trial_s=_TRIAL_S, poll_ms=1000):
        """A trial not Accepted within trial_s reboots (the boot selector or the ESP32's
        bootloader may then roll back), but never in the middle of a charging session: it
        waits for the sessions."""
        await asyncio.sleep_ms(trial_s * 1000)
        while self._on_trial() and self.connection.registration != "Accepted":
            if self.transactions.idle():
                log.warn(_TAG, "trial slot not accepted within %d s: rebooting" % trial_s)
                await self.reboot("FirmwareUpdate")
                return
            await asyncio.sleep_ms(poll_ms)
