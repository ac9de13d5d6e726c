# bootsel: the boot selector: which installed application slot runs, decided before any
# application module is imported. MIT licence. Ours: the first stage of our two-slot updates.
#
# It is never part of a bundle (tools/ota.py leaves it out): it is the fixed first stage, run
# from the repo tree on the sim, the flashed files or the frozen image on a board. Keep it tiny
# and import nothing but built-in modules here: whatever it imports stays the base version.
#
# <root>/slots/a and <root>/slots/b each hold one application bundle (firmware/, lib/,
# boards/ as .mpy, manifest.json); <root>/slots/boot.json says which one runs:
#   {"confirmed": slot or absent, "trial": slot or absent, "tries": n, "failed": slot or absent}
# confirmed  the slot that got a BootNotification Accepted; absent: the base code (no slot)
# trial      a slot just installed, not yet confirmed; tries = boots started with it so far,
#            counted before each start, so a crash or power loss during one still counts
# failed     the last trial given up after MAX_TRIES boots without confirming itself
# Every change is written atomically (temporary file, then rename).

import json
import os
import sys

MAX_TRIES = 2  # boots a trial slot gets to confirm itself before the previous code returns
SLOTS = ("a", "b")

root = None  # the folder holding slots/, once activate() ran
running = None  # the slot running now; None: the base code
trial = False  # the running slot is a trial, not yet confirmed


def _doc_path(r):
    return r + "/slots/boot.json"


def load(r):
    try:
        with open(_doc_path(r)) as f:
            doc = json.load(f)
        return doc if type(doc) is dict else {}
    except (OSError, ValueError):
        return {}


def save(r, doc):
    path = _doc_path(r)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(path + ".tmp", path)


def slot_dir(r, slot):
    return "%s/slots/%s" % (r, slot)


def _present(r, slot):
    try:
        os.stat(slot_dir(r, slot) + "/manifest.json")
        return slot in SLOTS
    except OSError:
        return False


def select(r):
    """(slot or None, is_trial): what to run now. A trial start is counted first."""
    doc = load(r)
    t = doc.get("trial")
    if t:
        if doc.get("tries", 0) < MAX_TRIES and _present(r, t):
            doc["tries"] = doc.get("tries", 0) + 1
            save(r, doc)
            return t, True
        doc["failed"] = t  # given up: back to the confirmed slot
        doc.pop("trial", None)
        doc.pop("tries", None)
        save(r, doc)
    c = doc.get("confirmed")
    return (c if c and _present(r, c) else None), False


def activate(r):
    """Select the slot and put it first on sys.path. Application modules imported before
    (the sim's entry is inside `boards`) are forgotten so that they load from the slot."""
    global root, running, trial
    root = r
    running, trial = select(r)
    if running is None:
        return None
    base = slot_dir(r, running)
    sys.path.insert(0, base)
    sys.path.insert(0, base + "/lib")
    for name in list(sys.modules):
        if name.split(".")[0] in ("boards", "firmware"):
            del sys.modules[name]
    return running


def inactive():
    """The slot an update may overwrite: the one not running."""
    return "b" if running == "a" else "a"


def set_trial(slot):
    """Boot `slot` next, on trial."""
    doc = load(root)
    doc["trial"] = slot
    doc["tries"] = 0
    doc.pop("failed", None)
    save(root, doc)


def failed(slot):
    """`slot` was tried and given up."""
    return root is not None and load(root).get("failed") == slot


def confirm():
    """The running trial slot works (its BootNotification was Accepted): keep booting it.
    True when this confirmed a trial."""
    global trial
    if root is None or not trial:
        return False
    doc = load(root)
    if doc.get("trial") != running:
        return False
    doc["confirmed"] = running
    doc.pop("trial", None)
    doc.pop("tries", None)
    save(root, doc)
    trial = False
    return True
