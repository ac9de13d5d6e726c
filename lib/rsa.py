# rsa: RSA signature verification, PKCS #1 v1.5 and PSS (RFC 8017 §8.1.2, §8.2.2).
# MIT licence. Ours because MicroPython has no public-key cryptography and no maintained
# package offers it.
#
#   PublicKey(n, e)       ValueError unless n is odd with 2048 to 4096 bits and e odd, > 1
#   key.verify_pkcs1v15(hash_name, digest, sig) -> bool
#   key.verify_pss(hash_name, digest, sig, salt_len=None) -> bool
#                         MGF1 with the same hash; salt_len None accepts any salt length
#                         (it is read from the signature), else only that one
#   key.verify_digest(hash_name, digest, sig) -> bool   PKCS #1 v1.5, else PSS with any salt
#   key.verify_steps(hash_name, digest, sig, scheme=None, salt_len=None)
#                         any of them as steps (steps.py): a pause after each bit of e
#                         and each MGF1 block
#   key.default_hash      "sha256"
#
# hash_name is "sha256", "sha384" or "sha512" (sha2.new); digest is that hash of the message,
# computed by the caller, possibly chunk by chunk. A digest of the wrong length for hash_name
# is the caller's mistake: ValueError. A signature that does not verify, whatever its bytes,
# is False.

import asn1
import sha2
import steps

MIN_BITS = 2048
MAX_BITS = 4096

# RFC 8017 §9.2 note 1: the DER of DigestInfo up to the digest itself.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _check_digest(hash_name, digest):
    if hash_name not in _DIGEST_INFO:
        raise ValueError("unsupported hash %s" % hash_name)
    if len(digest) != sha2.SIZES[hash_name]:
        raise ValueError("not a %s digest" % hash_name)


def _mgf1(hash_name, seed, length):
    # RFC 8017 §B.2.1 as steps: Hash(seed || counter) for counter = 0, 1, ... cut to length.
    out = b""
    i = 0
    while len(out) < length:
        out += sha2.new(hash_name, seed + i.to_bytes(4, "big")).digest()
        i += 1
        yield
    return out[:length]


class PublicKey:
    default_hash = "sha256"

    def __init__(self, n, e):
        bits = asn1.bit_length(n)
        if not MIN_BITS <= bits <= MAX_BITS or n % 2 == 0:
            raise ValueError("RSA modulus of %d bits not supported" % bits)
        if e < 3 or e % 2 == 0 or e >= n:
            raise ValueError("bad RSA exponent")
        self.n = n
        self.e = e
        self.bits = bits
        self.size = (bits + 7) // 8  # k: signature length in bytes

    def verify_pkcs1v15(self, hash_name, digest, sig):
        return steps.run(self.verify_steps(hash_name, digest, sig, "pkcs1"))

    def verify_pss(self, hash_name, digest, sig, salt_len=None):
        return steps.run(self.verify_steps(hash_name, digest, sig, "pss", salt_len))

    def verify_digest(self, hash_name, digest, sig):
        return steps.run(self.verify_steps(hash_name, digest, sig))

    def verify_steps(self, hash_name, digest, sig, scheme=None, salt_len=None):
        """The verifications above as steps (see steps.py); scheme "pkcs1" or "pss" allows
        only that one, None either."""
        _check_digest(hash_name, digest)
        m = yield from self._open(sig)
        if m is None:
            return False
        if scheme != "pss" and self._pkcs1v15(hash_name, digest, m):
            return True
        return scheme != "pkcs1" and (yield from self._pss(hash_name, digest, m, salt_len))

    def _open(self, sig):
        # RSAVP1 as steps: the representative s^e mod n, or None for a malformed signature.
        if len(sig) != self.size:
            return None
        s = int.from_bytes(sig, "big")
        if s >= self.n:
            return None
        # Square and multiply from the top bit of e, a pause after each bit (17 for 65537).
        # The squares by pow(): its temporaries (blocks of 1 KB for RSA-4096) are given back
        # at once, and its result takes half of m * m % n's (heap on a board, where the other
        # tasks fill freed blocks with small objects at every pause).
        m = s
        n = self.n
        for bit in bin(self.e)[3:]:
            yield
            m = pow(m, 2, n)
            if bit == "1":
                m = m * s % n
        return m

    def _pkcs1v15(self, hash_name, digest, m):
        # EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo, compared whole.
        t = _DIGEST_INFO[hash_name] + digest
        em = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        return m.to_bytes(self.size, "big") == em

    def _pss(self, hash_name, digest, m, salt_len):
        # EMSA-PSS-VERIFY as steps.
        h_len = len(digest)
        em_bits = self.bits - 1
        em_len = (em_bits + 7) // 8
        # EM = maskedDB || H || 0xBC in em_len bytes, whose bits above em_bits are zero.
        if m >> em_bits or em_len < h_len + 2 or (m & 0xFF) != 0xBC:
            return False
        em = m.to_bytes(em_len, "big")
        db_len = em_len - h_len - 1
        h = em[db_len:-1]
        mask = int.from_bytes((yield from _mgf1(hash_name, h, db_len)), "big")
        db_bits = em_bits - 8 * (h_len + 1)  # DB's bits below em_bits
        db = (int.from_bytes(em[:db_len], "big") ^ mask) & ((1 << db_bits) - 1)
        # DB = zeros || 0x01 || salt: its highest set bit is the 0x01, a byte boundary above
        # the salt.
        top = asn1.bit_length(db) - 1
        if top % 8:
            return False
        n_salt = top // 8
        if salt_len is not None and n_salt != salt_len:
            return False
        salt = db.to_bytes(db_len, "big")[db_len - n_salt :]
        return sha2.new(hash_name, bytes(8) + digest + salt).digest() == h
