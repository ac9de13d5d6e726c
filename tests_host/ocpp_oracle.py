"""The test oracle for OCPP payloads: the official OCPP 2.0.1 JSON schemas shipped in the
`ocpp` package, checked by jsonschema (with date-time formats)."""

import functools
import json
from pathlib import Path

import jsonschema
import ocpp

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"


@functools.lru_cache(maxsize=None)
def validator(name):
    """A jsonschema validator of the official schema `name`."""
    schema = json.loads((SCHEMAS / (name + ".json")).read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=jsonschema.FormatChecker())


def valid(name, payload):
    """`payload` as it would be on the wire, after checking it against the schema `name`
    (e.g. "TransactionEventRequest"); raises jsonschema.ValidationError."""
    wire = json.loads(json.dumps(payload))
    validator(name).validate(wire)
    return wire
