# pem: PEM (RFC 7468) text to DER and back, for certificates, keys and the TLS files. MIT licence.
# Ours because MicroPython has no PEM codec, and the TLS library of the unix port reads no PEM.

import binascii

_BEGIN = b"-----BEGIN "
_END = b"-----END "
_DASHES = b"-----"


def decode(data, label=None):
    """The DER contents of every PEM block of `data` (str or bytes), in order; with `label`
    (b"CERTIFICATE") only the blocks of that label. Text around the blocks is ignored.
    ValueError when a block has no END line or bad base64."""
    if type(data) is str:
        data = data.encode()
    out = []
    mv = memoryview(data)  # the base64 decoded in place: a copy would want another 1 KB block
    i = data.find(_BEGIN)
    while i >= 0:
        start = data.find(_DASHES, i + len(_BEGIN))  # the end of the BEGIN line's label
        end = data.find(_END, i)
        if start < 0 or end < 0 or end < start:
            raise ValueError("PEM block without END")
        if label is None or data[i + len(_BEGIN) : start] == label:
            try:
                out.append(binascii.a2b_base64(mv[start + len(_DASHES) : end]))
            except ValueError:
                raise ValueError("PEM: bad base64")
        i = data.find(_BEGIN, end + len(_END))
    return out


def lines(der, label=b"CERTIFICATE"):
    """The PEM text of `der`, one 64-character line (48 bytes) at a time: a writer can take
    it line by line (store.write_file), so that the whole text never is in RAM at once."""
    mv = memoryview(der)
    yield _BEGIN + label + b"-----\n"
    for i in range(0, len(der), 48):
        yield binascii.b2a_base64(mv[i : i + 48])  # with its newline
    yield _END + label + b"-----\n"
