"""lib/asn1.py: DER only, exact values, and nothing but DerError for any bytes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asn1
from asn1 import DerError, Reader


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def der_int(n):
    size = (n + (n < 0)).bit_length() // 8 + 1  # room for the sign bit
    return tlv(0x02, n.to_bytes(size, "big", signed=True))


def der_oid(arcs):
    out = b""
    for n in [40 * arcs[0] + arcs[1]] + arcs[2:]:
        b = [n & 0x7F]
        n >>= 7
        while n:
            b.insert(0, 0x80 | n & 0x7F)
            n >>= 7
        out += bytes(b)
    return tlv(0x06, out)


@pytest.mark.parametrize("n", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 70000])
def test_lengths_short_and_long_form(n):
    content = bytes(n)
    r = Reader(tlv(0x04, content) + b"\x05\x00")
    assert r.read(asn1.OCTET_STRING) == content
    assert r.peek() == 0x05
    assert r.read(0x05) == b""
    assert r.done() and r.peek() is None
    r.finish()


@pytest.mark.parametrize(
    "der",
    [
        b"\x04\x81\x05abcde",  # long form for a short length
        b"\x04\x82\x00\x80" + bytes(0x80),  # leading zero in the length
        b"\x04\x80abc\x00\x00",  # indefinite length (BER)
        b"\x04\x85\x00\x00\x00\x00\x01a",  # five length bytes
        b"\x04\x03ab",  # contents cut short
        b"\x04\x82\x01",  # length cut short
        b"\x04",  # no length
        b"",
    ],
)
def test_bad_lengths(der):
    with pytest.raises(DerError):
        Reader(der).read(asn1.OCTET_STRING)


def test_a_reader_never_reads_past_its_end():
    outer = Reader(b"\x30\x03\x04\x02ab\x04\x00")  # the SEQUENCE claims 3, the OCTET STRING 2
    inner = outer.sub()
    with pytest.raises(DerError):
        inner.read(asn1.OCTET_STRING)


def test_wrong_tag_and_leftovers():
    with pytest.raises(DerError, match="tag"):
        Reader(b"\x02\x01\x00").read(asn1.OCTET_STRING)
    r = Reader(b"\x02\x01\x00\x02\x01\x01")
    r.integer()
    with pytest.raises(DerError):
        r.finish()
    with pytest.raises(DerError):
        asn1.one(b"\x30\x00\x00")
    assert asn1.one(b"\x30\x03\x02\x01\x07").integer() == 7


def test_raw_rest_optional():
    der = tlv(0x30, der_int(5) + tlv(0xA3, der_int(6)) + b"\x05\x00")
    r = Reader(der)
    assert r.raw() == der and r.done()
    seq = asn1.one(der)
    assert seq.optional(asn1.explicit(0)) is None
    assert seq.integer() == 5
    assert seq.optional(asn1.explicit(3)).integer() == 6
    assert seq.rest() == b"\x05\x00" and seq.done()


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**600), 2**600))
def test_integers(n):
    assert Reader(der_int(n)).integer() == n


@pytest.mark.parametrize("content", [b"", b"\x00\x01", b"\x00\x7f", b"\xff\xff", b"\xff\x80"])
def test_integers_not_minimal(content):
    with pytest.raises(DerError):
        Reader(tlv(0x02, content)).integer()


@pytest.mark.parametrize(
    "der,oid",
    [
        (bytes.fromhex("06092a864886f70d01010b"), "1.2.840.113549.1.1.11"),
        (bytes.fromhex("06082a8648ce3d030107"), "1.2.840.10045.3.1.7"),
        (bytes.fromhex("060355040a"), "2.5.4.10"),
        (bytes.fromhex("0603883703"), "2.999.3"),
        (bytes.fromhex("060100"), "0.0"),
    ],
)
def test_oid_vectors(der, oid):
    assert Reader(der).oid() == oid


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2).flatmap(
        lambda a: st.tuples(
            st.just(a), st.integers(0, 39 if a < 2 else 2**70), st.lists(st.integers(0, 2**70))
        )
    )
)
def test_oids(arcs):
    arcs = [arcs[0], arcs[1]] + arcs[2]
    assert Reader(der_oid(arcs)).oid() == ".".join(map(str, arcs))


@pytest.mark.parametrize("content", [b"", b"\x2a\x86", b"\x2a\x80\x01", b"\x80\x01"])
def test_bad_oids(content):
    with pytest.raises(DerError):
        Reader(tlv(0x06, content)).oid()


def test_booleans():
    assert Reader(b"\x01\x01\xff").boolean() is True
    assert Reader(b"\x01\x01\x00").boolean() is False
    for bad in (b"\x01\x01\x01", b"\x01\x00", b"\x01\x02\xff\xff"):
        with pytest.raises(DerError):
            Reader(bad).boolean()


def test_bit_strings():
    assert Reader(b"\x03\x02\x07\x80").bits() == (b"\x80", 7)
    assert Reader(b"\x03\x01\x00").bits() == (b"", 0)
    assert Reader(b"\x03\x03\x00\xab\xcd").bits() == (b"\xab\xcd", 0)
    for bad in (b"\x03\x00", b"\x03\x01\x01", b"\x03\x02\x08\x00", b"\x03\x02\x07\x81"):
        with pytest.raises(DerError):
            Reader(bad).bits()


@pytest.mark.parametrize(
    "tag,content,text",
    [
        (0x0C, "Grüße ⚡".encode(), "Grüße ⚡"),
        (0x13, b"Wallbox 1", "Wallbox 1"),
        (0x16, b"a@b.example", "a@b.example"),
        (0x1A, b"visible", "visible"),
        (0x14, b"caf\xe9", "café"),
        (0x1E, "Grüße".encode("utf-16-be"), "Grüße"),
        (0x1C, "😀x".encode("utf-32-be"), "😀x"),
    ],
)
def test_strings(tag, content, text):
    assert Reader(tlv(tag, content)).string() == text


@pytest.mark.parametrize(
    "der",
    [
        tlv(0x0C, b"\xff\xfe"),  # not UTF-8
        tlv(0x1E, b"\x00a\x00"),  # odd length
        tlv(0x1C, b"\x00\x11\x00\x00"),  # beyond U+10FFFF
        tlv(0x04, b"abc"),  # not a string type
        b"",
    ],
)
def test_bad_strings(der):
    with pytest.raises(DerError):
        Reader(der).string()


def walk(r, depth=0):
    """Read everything in r the way its tags suggest, constructed ones recursively."""
    while not r.done():
        tag = r.peek()
        if tag & 0x20 and depth < 20:
            walk(r.sub(tag), depth + 1)
        elif tag == 0x02:
            r.integer()
        elif tag == 0x01:
            r.boolean()
        elif tag == 0x03:
            r.bits()
        elif tag == 0x06:
            r.oid()
        elif tag in (0x0C, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E):
            r.string()
        else:
            r.read(tag)
    r.finish()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_raise_only_der_error(data):
    try:
        walk(Reader(data))
    except DerError:
        pass


READS = ["integer", "boolean", "bits", "oid", "string", "sub", "raw", "rest", "finish"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48), st.lists(st.sampled_from(READS), max_size=8))
def test_any_reads_of_any_bytes_raise_only_der_error(data, reads):
    r = Reader(data)
    try:
        for name in reads:
            got = getattr(r, name)()
            if name == "sub":
                r = got
    except DerError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**70), 2**70), max_size=5), st.integers(0, 200), st.integers(0, 0xFF)
)
def test_mangled_structures_raise_only_der_error(ints, at, byte):
    der = tlv(0x30, b"".join(der_int(n) for n in ints) + der_oid([1, 2, 840, 113549]))
    der = bytearray(der)
    der[at % len(der)] = byte
    try:
        walk(Reader(bytes(der)))
    except DerError:
        pass


@given(st.integers(min_value=0, max_value=1 << 9000))
def test_bit_length_is_pythons(n):
    assert asn1.bit_length(n) == n.bit_length()
