"""Record protection for the tracer: TLS 1.3 traffic keys from key-log secrets (RFC 8446
§7.3, via aioquic's HKDF-Expand-Label), TLS 1.2 AEAD keys from the master secret (RFC 5246
§6.3 PRF), and AEAD open with `cryptography` (AES-GCM, ChaCha20-Poly1305).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from aioquic.tls import hkdf_expand_label
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# suite -> (AEAD, key length, hash name); TLS 1.3 suites and the TLS 1.2 AEAD suites.
SUITES: dict[int, tuple[str, int, str]] = {
    0x1301: ("aes-gcm", 16, "sha256"),
    0x1302: ("aes-gcm", 32, "sha384"),
    0x1303: ("chacha", 32, "sha256"),
    0xC02B: ("aes-gcm", 16, "sha256"),
    0xC02C: ("aes-gcm", 32, "sha384"),
    0xC02F: ("aes-gcm", 16, "sha256"),
    0xC030: ("aes-gcm", 32, "sha384"),
    0x009C: ("aes-gcm", 16, "sha256"),
    0x009D: ("aes-gcm", 32, "sha384"),
    0xCCA8: ("chacha", 32, "sha256"),
    0xCCA9: ("chacha", 32, "sha256"),
}


def _hash(name: str) -> hashes.HashAlgorithm:
    return hashes.SHA384() if name == "sha384" else hashes.SHA256()


@dataclass
class RecordKey:
    """One direction's AEAD key; `seq` counts the records it has opened."""

    aead: AESGCM | ChaCha20Poly1305
    iv: bytes
    tls12_gcm: bool = False  # TLS 1.2 GCM: 4-byte salt + 8-byte explicit nonce per record
    seq: int = 0

    def open13(self, header: bytes, ciphertext: bytes) -> bytes | None:
        """TLS 1.3: the additional data is the record header (§5.2)."""
        nonce = _xor_seq(self.iv, self.seq)
        try:
            plain = self.aead.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            return None
        self.seq += 1
        return plain

    def open12(self, content_type: int, version: int, fragment: bytes) -> bytes | None:
        """TLS 1.2 AEAD (RFC 5288, RFC 7905): additional data is seq|type|version|length."""
        if self.tls12_gcm:
            if len(fragment) < 8 + 16:
                return None
            nonce, ciphertext = self.iv + fragment[:8], fragment[8:]
        else:
            nonce, ciphertext = _xor_seq(self.iv, self.seq), fragment
        if len(ciphertext) < 16:
            return None  # shorter than the AEAD tag: cannot be a record of this suite
        aad = struct.pack("!QBHH", self.seq, content_type, version, len(ciphertext) - 16)
        try:
            plain = self.aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None
        self.seq += 1
        return plain


def _xor_seq(iv: bytes, seq: int) -> bytes:
    padded = seq.to_bytes(len(iv), "big")
    return bytes(a ^ b for a, b in zip(iv, padded, strict=True))


def _aead(kind: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return ChaCha20Poly1305(key) if kind == "chacha" else AESGCM(key)


def tls13_key(suite: int, secret: bytes) -> RecordKey | None:
    """The record key of a TLS 1.3 traffic secret (HKDF-Expand-Label "key" and "iv")."""
    if suite not in SUITES:
        return None
    kind, key_len, hash_name = SUITES[suite]
    algorithm = _hash(hash_name)
    key = hkdf_expand_label(algorithm, secret, b"key", b"", key_len)
    iv = hkdf_expand_label(algorithm, secret, b"iv", b"", 12)
    return RecordKey(_aead(kind, key), iv)


def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def tls12_keys(
    suite: int, master: bytes, client_random: bytes, server_random: bytes
) -> tuple[RecordKey, RecordKey] | None:
    """(client write key, server write key) of a TLS 1.2 AEAD suite, else None."""
    if suite not in SUITES or suite in (0x1301, 0x1302, 0x1303):
        return None
    kind, key_len, hash_name = SUITES[suite]
    iv_len = 12 if kind == "chacha" else 4
    block = _p_hash(hash_name, master, b"key expansion" + server_random + client_random,
                    2 * (key_len + iv_len))
    ck, sk = block[:key_len], block[key_len:2 * key_len]
    civ, siv = block[2 * key_len:2 * key_len + iv_len], block[2 * key_len + iv_len:]
    gcm = kind == "aes-gcm"
    return (RecordKey(_aead(kind, ck), civ, tls12_gcm=gcm),
            RecordKey(_aead(kind, sk), siv, tls12_gcm=gcm))
