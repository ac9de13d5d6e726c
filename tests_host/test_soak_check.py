"""The soak test's checker (tools/soak.py `check`) finds what it must find: gaps, changed
duplicates, missing or double Started/Ended, transactions the CSMS never heard of, and energy
billed that the meter did not count."""

import copy

from tools.soak import check


def mv(context, wh):
    return {
        "timestamp": "2026-01-01T00:00:00Z",
        "sampledValue": [{"value": wh, "context": context, "unitOfMeasure": {"unit": "Wh"}}],
    }


def session(tx, begin, end, updates=2):
    info = {"transactionId": tx}
    out = [
        {
            "eventType": "Started",
            "seqNo": 0,
            "transactionInfo": dict(info),
            "meterValue": [mv("Transaction.Begin", begin)],
        }
    ]
    for k in range(1, updates + 1):
        out.append({"eventType": "Updated", "seqNo": k, "transactionInfo": dict(info)})
    out.append(
        {
            "eventType": "Ended",
            "seqNo": updates + 1,
            "transactionInfo": dict(info),
            "meterValue": [mv("Transaction.Begin", begin), mv("Transaction.End", end)],
        }
    )
    return out


def test_whole_sessions_pass_and_resends_are_counted():
    got = session("a", 10.0, 20.0) + session("b", 20.0, 35.5)
    got.append(copy.deepcopy(got[1]))  # sent again after a power loss: the same message
    problems, counts = check(got, {"a", "b"}, 25.5)
    assert problems == []
    assert counts == {"transactions": 2, "resent": 1, "billed_wh": 25.5}


def test_every_fault_is_found():
    a = session("a", 10.0, 20.0)
    del a[2]  # a gap
    b = session("b", 20.0, 30.0)
    b[1] = dict(b[1], triggerReason="changed")
    b.append(dict(b[1], triggerReason="other"))  # same seqNo, different content
    c = session("c", 30.0, 40.0)[:-1]  # never ended
    d = session("d", 40.0, 50.0)
    d[1]["eventType"] = "Started"  # two Started
    problems, _ = check(a + b + c + d, {"a", "b", "c", "d", "e"}, 0.0)
    text = "\n".join(problems)
    assert "a: seqNo [0, 1, 3] has gaps" in text
    assert "b seqNo 1: two different events" in text
    assert "c: not ended exactly once" in text
    assert "d: Started" in text
    assert "e: the station showed it, the CSMS never heard of it" in text
    assert "billed" in text  # b and d billed 20 Wh, the meter counted none


def test_energy_the_meter_did_not_count_is_a_finding():
    problems, _ = check(session("a", 0.0, 12.0), {"a"}, 11.0)
    assert problems == ["billed 12.00 Wh, the meter counted 11.00 Wh"]
