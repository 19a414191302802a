"""Names of the IANA-registered code points the tracer can meet, so no step shows a bare
number where the registry has a name (TLS groups, signature schemes, cipher suites,
extensions and alerts; QUIC versions, transport parameters and error codes; HTTP/2 and
HTTP/3 settings, frames and error codes).

Cipher suites carry OpenSSL's names (`openssl ciphers -V 'ALL:COMPLEMENTOFALL'`, which
is what Python's `ssl` reports and accepts, and what the lab's TCP stacks offer); TLS 1.3
suites are the same in both vocabularies. Reserved GREASE values (RFC 8701, RFC 9000
§18.1, RFC 9114 §7.2.8) are named GREASE. A value no registry knows keeps its hex.
"""

from __future__ import annotations

# TLS ProtocolVersion.
VERSIONS = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0",
            0x0300: "SSL 3.0"}

# TLS Supported Groups (RFC 8422, RFC 7919, RFC 8446, draft-ietf-tls-ecdhe-mlkem).
GROUPS = {
    0x0001: "sect163k1", 0x0002: "sect163r1", 0x0003: "sect163r2", 0x0004: "sect193r1",
    0x0005: "sect193r2", 0x0006: "sect233k1", 0x0007: "sect233r1", 0x0008: "sect239k1",
    0x0009: "sect283k1", 0x000A: "sect283r1", 0x000B: "sect409k1", 0x000C: "sect409r1",
    0x000D: "sect571k1", 0x000E: "sect571r1", 0x000F: "secp160k1", 0x0010: "secp160r1",
    0x0011: "secp160r2", 0x0012: "secp192k1", 0x0013: "secp192r1", 0x0014: "secp224k1",
    0x0015: "secp224r1", 0x0016: "secp256k1", 0x0017: "secp256r1", 0x0018: "secp384r1",
    0x0019: "secp521r1", 0x001A: "brainpoolP256r1", 0x001B: "brainpoolP384r1",
    0x001C: "brainpoolP512r1", 0x001D: "x25519", 0x001E: "x448",
    0x001F: "brainpoolP256r1tls13", 0x0020: "brainpoolP384r1tls13",
    0x0021: "brainpoolP512r1tls13", 0x0022: "GC256A", 0x0023: "GC256B", 0x0024: "GC256C",
    0x0025: "GC256D", 0x0026: "GC512A", 0x0027: "GC512B", 0x0028: "GC512C",
    0x0029: "curveSM2",
    0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x0103: "ffdhe6144",
    0x0104: "ffdhe8192",
    0x0200: "MLKEM512", 0x0201: "MLKEM768", 0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00", 0x639A: "SecP256r1Kyber768Draft00",
    0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}

# TLS SignatureScheme (RFC 8446 §4.2.3), with the TLS 1.2 hash/signature pairs OpenSSL
# still offers (SHA-224 and DSA; RFC 5246 §7.4.1.4.1) under OpenSSL's names.
SIGNATURE_SCHEMES = {
    0x0201: "rsa_pkcs1_sha1", 0x0202: "dsa_sha1", 0x0203: "ecdsa_sha1",
    0x0301: "rsa_pkcs1_sha224", 0x0302: "dsa_sha224", 0x0303: "ecdsa_sha224",
    0x0401: "rsa_pkcs1_sha256", 0x0402: "dsa_sha256", 0x0403: "ecdsa_secp256r1_sha256",
    0x0420: "rsa_pkcs1_sha256_legacy",
    0x0501: "rsa_pkcs1_sha384", 0x0502: "dsa_sha384", 0x0503: "ecdsa_secp384r1_sha384",
    0x0520: "rsa_pkcs1_sha384_legacy",
    0x0601: "rsa_pkcs1_sha512", 0x0602: "dsa_sha512", 0x0603: "ecdsa_secp521r1_sha512",
    0x0620: "rsa_pkcs1_sha512_legacy",
    0x0704: "eccsi_sha256", 0x0705: "iso_ibs1", 0x0706: "iso_ibs2", 0x0707: "iso_chinese_ibs",
    0x0708: "sm2sig_sm3", 0x0709: "gostr34102012_256a", 0x070A: "gostr34102012_256b",
    0x070B: "gostr34102012_256c", 0x070C: "gostr34102012_256d",
    0x070D: "gostr34102012_512a", 0x070E: "gostr34102012_512b",
    0x070F: "gostr34102012_512c",
    0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
    0x0807: "ed25519", 0x0808: "ed448", 0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384", 0x080B: "rsa_pss_pss_sha512",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256", 0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
    0x0904: "mldsa44", 0x0905: "mldsa65", 0x0906: "mldsa87",
}

# TLS cipher suites: every suite OpenSSL knows, plus the signalling values.
CIPHERS = {
    0x0001: "NULL-MD5", 0x0002: "NULL-SHA", 0x000A: "DES-CBC3-SHA", 0x002C: "PSK-NULL-SHA",
    0x002D: "DHE-PSK-NULL-SHA", 0x002E: "RSA-PSK-NULL-SHA", 0x002F: "AES128-SHA",
    0x0032: "DHE-DSS-AES128-SHA", 0x0033: "DHE-RSA-AES128-SHA", 0x0034: "ADH-AES128-SHA",
    0x0035: "AES256-SHA", 0x0038: "DHE-DSS-AES256-SHA", 0x0039: "DHE-RSA-AES256-SHA",
    0x003A: "ADH-AES256-SHA", 0x003B: "NULL-SHA256", 0x003C: "AES128-SHA256",
    0x003D: "AES256-SHA256", 0x0040: "DHE-DSS-AES128-SHA256", 0x0041: "CAMELLIA128-SHA",
    0x0044: "DHE-DSS-CAMELLIA128-SHA", 0x0045: "DHE-RSA-CAMELLIA128-SHA",
    0x0046: "ADH-CAMELLIA128-SHA", 0x0067: "DHE-RSA-AES128-SHA256",
    0x006A: "DHE-DSS-AES256-SHA256", 0x006B: "DHE-RSA-AES256-SHA256",
    0x006C: "ADH-AES128-SHA256", 0x006D: "ADH-AES256-SHA256", 0x0084: "CAMELLIA256-SHA",
    0x0087: "DHE-DSS-CAMELLIA256-SHA", 0x0088: "DHE-RSA-CAMELLIA256-SHA",
    0x0089: "ADH-CAMELLIA256-SHA", 0x008C: "PSK-AES128-CBC-SHA", 0x008D: "PSK-AES256-CBC-SHA",
    0x0090: "DHE-PSK-AES128-CBC-SHA", 0x0091: "DHE-PSK-AES256-CBC-SHA",
    0x0094: "RSA-PSK-AES128-CBC-SHA", 0x0095: "RSA-PSK-AES256-CBC-SHA",
    0x009C: "AES128-GCM-SHA256", 0x009D: "AES256-GCM-SHA384",
    0x009E: "DHE-RSA-AES128-GCM-SHA256", 0x009F: "DHE-RSA-AES256-GCM-SHA384",
    0x00A2: "DHE-DSS-AES128-GCM-SHA256", 0x00A3: "DHE-DSS-AES256-GCM-SHA384",
    0x00A6: "ADH-AES128-GCM-SHA256", 0x00A7: "ADH-AES256-GCM-SHA384",
    0x00A8: "PSK-AES128-GCM-SHA256", 0x00A9: "PSK-AES256-GCM-SHA384",
    0x00AA: "DHE-PSK-AES128-GCM-SHA256", 0x00AB: "DHE-PSK-AES256-GCM-SHA384",
    0x00AC: "RSA-PSK-AES128-GCM-SHA256", 0x00AD: "RSA-PSK-AES256-GCM-SHA384",
    0x00AE: "PSK-AES128-CBC-SHA256", 0x00AF: "PSK-AES256-CBC-SHA384", 0x00B0: "PSK-NULL-SHA256",
    0x00B1: "PSK-NULL-SHA384", 0x00B2: "DHE-PSK-AES128-CBC-SHA256",
    0x00B3: "DHE-PSK-AES256-CBC-SHA384", 0x00B4: "DHE-PSK-NULL-SHA256",
    0x00B5: "DHE-PSK-NULL-SHA384", 0x00B6: "RSA-PSK-AES128-CBC-SHA256",
    0x00B7: "RSA-PSK-AES256-CBC-SHA384", 0x00B8: "RSA-PSK-NULL-SHA256",
    0x00B9: "RSA-PSK-NULL-SHA384", 0x00BA: "CAMELLIA128-SHA256",
    0x00BD: "DHE-DSS-CAMELLIA128-SHA256", 0x00BE: "DHE-RSA-CAMELLIA128-SHA256",
    0x00BF: "ADH-CAMELLIA128-SHA256", 0x00C0: "CAMELLIA256-SHA256",
    0x00C3: "DHE-DSS-CAMELLIA256-SHA256", 0x00C4: "DHE-RSA-CAMELLIA256-SHA256",
    0x00C5: "ADH-CAMELLIA256-SHA256", 0x00FF: "EMPTY_RENEGOTIATION_SCSV",
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256", 0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256", 0x5600: "TLS_FALLBACK_SCSV",
    0xC006: "ECDHE-ECDSA-NULL-SHA", 0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA", 0xC010: "ECDHE-RSA-NULL-SHA",
    0xC013: "ECDHE-RSA-AES128-SHA", 0xC014: "ECDHE-RSA-AES256-SHA", 0xC015: "AECDH-NULL-SHA",
    0xC018: "AECDH-AES128-SHA", 0xC019: "AECDH-AES256-SHA", 0xC01D: "SRP-AES-128-CBC-SHA",
    0xC01E: "SRP-RSA-AES-128-CBC-SHA", 0xC01F: "SRP-DSS-AES-128-CBC-SHA",
    0xC020: "SRP-AES-256-CBC-SHA", 0xC021: "SRP-RSA-AES-256-CBC-SHA",
    0xC022: "SRP-DSS-AES-256-CBC-SHA", 0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC024: "ECDHE-ECDSA-AES256-SHA384", 0xC027: "ECDHE-RSA-AES128-SHA256",
    0xC028: "ECDHE-RSA-AES256-SHA384", 0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384", 0xC035: "ECDHE-PSK-AES128-CBC-SHA",
    0xC036: "ECDHE-PSK-AES256-CBC-SHA", 0xC037: "ECDHE-PSK-AES128-CBC-SHA256",
    0xC038: "ECDHE-PSK-AES256-CBC-SHA384", 0xC039: "ECDHE-PSK-NULL-SHA",
    0xC03A: "ECDHE-PSK-NULL-SHA256", 0xC03B: "ECDHE-PSK-NULL-SHA384",
    0xC050: "ARIA128-GCM-SHA256", 0xC051: "ARIA256-GCM-SHA384",
    0xC052: "DHE-RSA-ARIA128-GCM-SHA256", 0xC053: "DHE-RSA-ARIA256-GCM-SHA384",
    0xC056: "DHE-DSS-ARIA128-GCM-SHA256", 0xC057: "DHE-DSS-ARIA256-GCM-SHA384",
    0xC05C: "ECDHE-ECDSA-ARIA128-GCM-SHA256", 0xC05D: "ECDHE-ECDSA-ARIA256-GCM-SHA384",
    0xC060: "ECDHE-ARIA128-GCM-SHA256", 0xC061: "ECDHE-ARIA256-GCM-SHA384",
    0xC06A: "PSK-ARIA128-GCM-SHA256", 0xC06B: "PSK-ARIA256-GCM-SHA384",
    0xC06C: "DHE-PSK-ARIA128-GCM-SHA256", 0xC06D: "DHE-PSK-ARIA256-GCM-SHA384",
    0xC06E: "RSA-PSK-ARIA128-GCM-SHA256", 0xC06F: "RSA-PSK-ARIA256-GCM-SHA384",
    0xC072: "ECDHE-ECDSA-CAMELLIA128-SHA256", 0xC073: "ECDHE-ECDSA-CAMELLIA256-SHA384",
    0xC076: "ECDHE-RSA-CAMELLIA128-SHA256", 0xC077: "ECDHE-RSA-CAMELLIA256-SHA384",
    0xC094: "PSK-CAMELLIA128-SHA256", 0xC095: "PSK-CAMELLIA256-SHA384",
    0xC096: "DHE-PSK-CAMELLIA128-SHA256", 0xC097: "DHE-PSK-CAMELLIA256-SHA384",
    0xC098: "RSA-PSK-CAMELLIA128-SHA256", 0xC099: "RSA-PSK-CAMELLIA256-SHA384",
    0xC09A: "ECDHE-PSK-CAMELLIA128-SHA256", 0xC09B: "ECDHE-PSK-CAMELLIA256-SHA384",
    0xC09C: "AES128-CCM", 0xC09D: "AES256-CCM", 0xC09E: "DHE-RSA-AES128-CCM",
    0xC09F: "DHE-RSA-AES256-CCM", 0xC0A0: "AES128-CCM8", 0xC0A1: "AES256-CCM8",
    0xC0A2: "DHE-RSA-AES128-CCM8", 0xC0A3: "DHE-RSA-AES256-CCM8", 0xC0A4: "PSK-AES128-CCM",
    0xC0A5: "PSK-AES256-CCM", 0xC0A6: "DHE-PSK-AES128-CCM", 0xC0A7: "DHE-PSK-AES256-CCM",
    0xC0A8: "PSK-AES128-CCM8", 0xC0A9: "PSK-AES256-CCM8", 0xC0AA: "DHE-PSK-AES128-CCM8",
    0xC0AB: "DHE-PSK-AES256-CCM8", 0xC0AC: "ECDHE-ECDSA-AES128-CCM",
    0xC0AD: "ECDHE-ECDSA-AES256-CCM", 0xC0AE: "ECDHE-ECDSA-AES128-CCM8",
    0xC0AF: "ECDHE-ECDSA-AES256-CCM8", 0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCAA: "DHE-RSA-CHACHA20-POLY1305",
    0xCCAB: "PSK-CHACHA20-POLY1305", 0xCCAC: "ECDHE-PSK-CHACHA20-POLY1305",
    0xCCAD: "DHE-PSK-CHACHA20-POLY1305", 0xCCAE: "RSA-PSK-CHACHA20-POLY1305",
}

# TLS ExtensionType.
EXTENSIONS = {
    0: "server_name", 1: "max_fragment_length", 2: "client_certificate_url",
    3: "trusted_ca_keys", 4: "truncated_hmac", 5: "status_request", 6: "user_mapping",
    7: "client_authz", 8: "server_authz", 9: "cert_type", 10: "supported_groups",
    11: "ec_point_formats", 12: "srp", 13: "signature_algorithms", 14: "use_srtp",
    15: "heartbeat", 16: "application_layer_protocol_negotiation",
    17: "status_request_v2", 18: "signed_certificate_timestamp",
    19: "client_certificate_type", 20: "server_certificate_type", 21: "padding",
    22: "encrypt_then_mac", 23: "extended_master_secret", 24: "token_binding",
    25: "cached_info", 26: "tls_lts", 27: "compress_certificate", 28: "record_size_limit",
    29: "pwd_protect", 30: "pwd_clear", 31: "password_salt", 32: "ticket_pinning",
    33: "tls_cert_with_extern_psk", 34: "delegated_credential", 35: "session_ticket",
    36: "TLMSP", 37: "TLMSP_proxying", 38: "TLMSP_delegate", 39: "supported_ekt_ciphers",
    41: "pre_shared_key", 42: "early_data", 43: "supported_versions", 44: "cookie",
    45: "psk_key_exchange_modes", 47: "certificate_authorities", 48: "oid_filters",
    49: "post_handshake_auth", 50: "signature_algorithms_cert", 51: "key_share",
    52: "transparency_info", 53: "connection_id_deprecated", 54: "connection_id",
    55: "external_id_hash", 56: "external_session_id", 57: "quic_transport_parameters",
    58: "ticket_request", 59: "dnssec_chain", 60: "sequence_number_encryption_algorithms",
    61: "rrc", 64768: "ech_outer_extensions", 65037: "encrypted_client_hello",
    65281: "renegotiation_info", 0xFFA5: "quic_transport_parameters (draft)",
}

# TLS AlertDescription.
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error",
    52: "too_many_cids_requested", 60: "export_restriction", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 111: "certificate_unobtainable",
    112: "unrecognized_name", 113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value", 115: "unknown_psk_identity",
    116: "certificate_required", 120: "no_application_protocol", 121: "ech_required",
}

PSK_MODES = {0: "psk_ke", 1: "psk_dhe_ke"}

# QUIC versions (RFC 9000, RFC 9369; drafts 0xff0000NN).
QUIC_VERSIONS = {0x00000001: "QUIC v1", 0x6B3343CF: "QUIC v2"}

# QUIC transport parameters (RFC 9000 §18.2, RFC 9221, RFC 9287, RFC 9368, drafts).
QUIC_TRANSPORT_PARAMETERS = {
    0x00: "original_destination_connection_id", 0x01: "max_idle_timeout",
    0x02: "stateless_reset_token", 0x03: "max_udp_payload_size", 0x04: "initial_max_data",
    0x05: "initial_max_stream_data_bidi_local", 0x06: "initial_max_stream_data_bidi_remote",
    0x07: "initial_max_stream_data_uni", 0x08: "initial_max_streams_bidi",
    0x09: "initial_max_streams_uni", 0x0A: "ack_delay_exponent", 0x0B: "max_ack_delay",
    0x0C: "disable_active_migration", 0x0D: "preferred_address",
    0x0E: "active_connection_id_limit", 0x0F: "initial_source_connection_id",
    0x10: "retry_source_connection_id", 0x11: "version_information",
    0x20: "max_datagram_frame_size", 0x0C37: "quantum_readiness", 0x173E: "discard",
    0x2AB2: "grease_quic_bit", 0xFF04DE1B: "min_ack_delay",
}
# Parameters whose value is a variable-length integer (the rest are bytes or empty).
QUIC_INTEGER_PARAMETERS = frozenset(
    {0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0E, 0x20, 0xFF04DE1B})

# QUIC transport error codes (RFC 9000 §20.1); 0x0100-0x01ff carry a TLS alert.
QUIC_ERRORS = {
    0x00: "NO_ERROR", 0x01: "INTERNAL_ERROR", 0x02: "CONNECTION_REFUSED",
    0x03: "FLOW_CONTROL_ERROR", 0x04: "STREAM_LIMIT_ERROR", 0x05: "STREAM_STATE_ERROR",
    0x06: "FINAL_SIZE_ERROR", 0x07: "FRAME_ENCODING_ERROR", 0x08: "TRANSPORT_PARAMETER_ERROR",
    0x09: "CONNECTION_ID_LIMIT_ERROR", 0x0A: "PROTOCOL_VIOLATION", 0x0B: "INVALID_TOKEN",
    0x0C: "APPLICATION_ERROR", 0x0D: "CRYPTO_BUFFER_EXCEEDED", 0x0E: "KEY_UPDATE_ERROR",
    0x0F: "AEAD_LIMIT_REACHED", 0x10: "NO_VIABLE_PATH", 0x11: "VERSION_NEGOTIATION_ERROR",
}

# HTTP/2 SETTINGS (RFC 9113 §6.5.2, RFC 8441, RFC 9218), and gRPC's private one.
H2_SETTINGS = {
    0x1: "HEADER_TABLE_SIZE", 0x2: "ENABLE_PUSH", 0x3: "MAX_CONCURRENT_STREAMS",
    0x4: "INITIAL_WINDOW_SIZE", 0x5: "MAX_FRAME_SIZE", 0x6: "MAX_HEADER_LIST_SIZE",
    0x8: "ENABLE_CONNECT_PROTOCOL", 0x9: "NO_RFC7540_PRIORITIES", 0x10: "TLS_RENEG_PERMITTED",
    0x2B603742: "ENABLE_WEBTRANSPORT",
    # Not IANA-registered: grpcio (gRPC core) sends it on every connection.
    0xFE03: "GRPC_ALLOW_TRUE_BINARY_METADATA",
}

# HTTP/2 error codes (RFC 9113 §7), for RST_STREAM and GOAWAY.
H2_ERRORS = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM", 0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM", 0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

# HTTP/3 SETTINGS (RFC 9114 §7.2.4.1, RFC 9204, RFC 9220, RFC 9297, drafts).
H3_SETTINGS = {
    0x01: "QPACK_MAX_TABLE_CAPACITY", 0x06: "MAX_FIELD_SECTION_SIZE",
    0x07: "QPACK_BLOCKED_STREAMS", 0x08: "ENABLE_CONNECT_PROTOCOL", 0x33: "H3_DATAGRAM",
    0xFFD277: "H3_DATAGRAM (draft)", 0x2B603742: "ENABLE_WEBTRANSPORT",
    0xC671706A: "WEBTRANSPORT_MAX_SESSIONS", 0x14E9CD29: "WEBTRANSPORT_MAX_SESSIONS (draft)",
}

# HTTP/3 frame types (RFC 9114 §7.2, RFC 9218 §7.2).
H3_FRAMES = {
    0x00: "DATA", 0x01: "HEADERS", 0x03: "CANCEL_PUSH", 0x04: "SETTINGS",
    0x05: "PUSH_PROMISE", 0x07: "GOAWAY", 0x0D: "MAX_PUSH_ID",
    0xF0700: "PRIORITY_UPDATE (request)", 0xF0701: "PRIORITY_UPDATE (push)",
    0x41: "WEBTRANSPORT_STREAM",
}

# HTTP/3 unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
H3_STREAMS = {0x00: "control", 0x01: "push", 0x02: "QPACK encoder", 0x03: "QPACK decoder",
              0x54: "WebTransport"}

# HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6), in CONNECTION_CLOSE 0x1d.
H3_ERRORS = {
    0x100: "H3_NO_ERROR", 0x101: "H3_GENERAL_PROTOCOL_ERROR", 0x102: "H3_INTERNAL_ERROR",
    0x103: "H3_STREAM_CREATION_ERROR", 0x104: "H3_CLOSED_CRITICAL_STREAM",
    0x105: "H3_FRAME_UNEXPECTED", 0x106: "H3_FRAME_ERROR", 0x107: "H3_EXCESSIVE_LOAD",
    0x108: "H3_ID_ERROR", 0x109: "H3_SETTINGS_ERROR", 0x10A: "H3_MISSING_SETTINGS",
    0x10B: "H3_REQUEST_REJECTED", 0x10C: "H3_REQUEST_CANCELLED", 0x10D: "H3_REQUEST_INCOMPLETE",
    0x10E: "H3_MESSAGE_ERROR", 0x10F: "H3_CONNECT_ERROR", 0x110: "H3_VERSION_FALLBACK",
    0x200: "QPACK_DECOMPRESSION_FAILED", 0x201: "QPACK_ENCODER_STREAM_ERROR",
    0x202: "QPACK_DECODER_STREAM_ERROR",
}


def tls_grease(value: int) -> bool:
    """RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA (both bytes equal, low nibble A)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def quic_grease(value: int) -> bool:
    """Reserved transport parameters, 31 * N + 27 (RFC 9000 §18.1)."""
    return value >= 27 and (value - 27) % 31 == 0


def h3_grease(value: int) -> bool:
    """Reserved settings, frame, stream and error codes, 0x1f * N + 0x21 (RFC 9114 §7.2.8)."""
    return value >= 0x21 and (value - 0x21) % 0x1F == 0


def _tls(table: dict[int, str], value: int) -> str:
    return table.get(value) or ("GREASE" if tls_grease(value) else f"0x{value:04x}")


def cipher_name(suite: int) -> str:
    return _tls(CIPHERS, suite)


def group_name(group: int) -> str:
    return _tls(GROUPS, group)


def version_name(version: int) -> str:
    return _tls(VERSIONS, version)


def signature_name(scheme: int) -> str:
    return _tls(SIGNATURE_SCHEMES, scheme)


def extension_name(ext: int) -> str:
    return _tls(EXTENSIONS, ext)


def alert_name(description: int) -> str:
    return ALERTS.get(description, str(description))


def quic_version_name(version: int) -> str:
    if version in QUIC_VERSIONS:
        return QUIC_VERSIONS[version]
    if version >> 8 == 0xFF0000:
        return f"QUIC draft-{version & 0xFF}"
    if version & 0x0F0F0F0F == 0x0A0A0A0A:
        return "GREASE"
    return f"0x{version:08x}"


def transport_parameter_name(param: int) -> str:
    # GREASE keeps its value: parameters become keys of one dict, and several may be sent.
    return QUIC_TRANSPORT_PARAMETERS.get(param) or (
        f"GREASE (0x{param:x})" if quic_grease(param) else f"0x{param:x}")


def quic_error_name(code: int) -> str:
    if code in QUIC_ERRORS:
        return QUIC_ERRORS[code]
    if 0x100 <= code <= 0x1FF:
        return f"CRYPTO_ERROR({alert_name(code - 0x100)})"
    return f"0x{code:x}"


def h2_setting_name(setting: int) -> str:
    return H2_SETTINGS.get(setting, f"0x{setting:x}")


def h2_error_name(code: int) -> str:
    return H2_ERRORS.get(code, f"0x{code:x}")


def _h3(table: dict[int, str], value: int) -> str:
    # GREASE keeps its value: settings become keys of one dict, and several may be sent.
    return table.get(value) or (f"GREASE (0x{value:x})" if h3_grease(value) else f"0x{value:x}")


def h3_setting_name(setting: int) -> str:
    return _h3(H3_SETTINGS, setting)


def h3_frame_name(ftype: int) -> str:
    return _h3(H3_FRAMES, ftype)


def h3_stream_name(stype: int) -> str:
    return _h3(H3_STREAMS, stype)


def h3_error_name(code: int) -> str:
    return _h3(H3_ERRORS, code)
