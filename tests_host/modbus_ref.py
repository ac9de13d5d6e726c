"""Reference Modbus RTU pieces for tests, written from the definition, independent of lib/."""


def ref_crc(data):
    """Bitwise CRC-16/MODBUS (init 0xFFFF, reflected polynomial 0xA001)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    """`body` followed by its CRC, low byte first, as on the wire."""
    c = ref_crc(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))
