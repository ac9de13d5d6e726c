# meter_values: OCPP sampledValue lists from an EVSE's latest meter reading. MIT licence.

_PHASES = ("L1", "L2", "L3")
_VOLT_PHASES = ("L1-N", "L2-N", "L3-N")


def sampled(evse, measurands, context):
    """sampledValue entries for the comma-separated `measurands` (those we can measure), the
    values rounded to 0.01."""
    r = evse.reading
    out = []
    for m in measurands.split(","):
        if m == "Current.Offered":
            out.append(_value(evse.offered_a, m, context, "A"))
        elif r is None:
            continue
        elif m == "Energy.Active.Import.Register":
            out.append(_value(r.energy_wh, m, context, "Wh"))
        elif m == "Power.Active.Import":
            out.append(_value(r.power_w, m, context, "W"))
        elif m == "Current.Import":
            _per_phase(out, r.current_a, m, context, "A", _PHASES)
        elif m == "Voltage":
            _per_phase(out, r.voltage_v, m, context, "V", _VOLT_PHASES)
    return out


def _value(v, measurand, context, unit):
    return {
        "value": round(v, 2),  # a meter's resolution, and readable
        "measurand": measurand,
        "context": context,
        "unitOfMeasure": {"unit": unit},
    }


def _per_phase(out, values, measurand, context, unit, names):
    for i in range(3):
        if values[i] is not None:
            d = _value(values[i], measurand, context, unit)
            d["phase"] = names[i]
            out.append(d)
