"""Protocol constants: record content types, handshake types, extensions, alerts."""

from __future__ import annotations

from enum import IntEnum


class ContentType(IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_STATUS = 22
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25
    MESSAGE_HASH = 254


class ExtensionType(IntEnum):
    SERVER_NAME = 0
    MAX_FRAGMENT_LENGTH = 1
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    USE_SRTP = 14
    HEARTBEAT = 15
    ALPN = 16
    STATUS_REQUEST_V2 = 17
    SIGNED_CERTIFICATE_TIMESTAMP = 18
    CLIENT_CERTIFICATE_TYPE = 19
    SERVER_CERTIFICATE_TYPE = 20
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    TOKEN_BINDING = 24
    CACHED_INFO = 25
    COMPRESS_CERTIFICATE = 27
    RECORD_SIZE_LIMIT = 28
    DELEGATED_CREDENTIALS = 34
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    CERTIFICATE_AUTHORITIES = 47
    OID_FILTERS = 48
    POST_HANDSHAKE_AUTH = 49
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51
    QUIC_TRANSPORT_PARAMETERS = 57
    ECH_OUTER_EXTENSIONS = 0xFD00
    ENCRYPTED_CLIENT_HELLO = 0xFE0D
    NEXT_PROTOCOL_NEGOTIATION = 13172
    APPLICATION_SETTINGS_OLD = 17513
    APPLICATION_SETTINGS = 17613
    CHANNEL_ID = 30032
    RENEGOTIATION_INFO = 0xFF01


def extension_name(value: int) -> str:
    try:
        return ExtensionType(value).name.lower()
    except ValueError:
        if (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF):
            return "grease"
        return f"0x{value:04X}"


def extension_value(name: str) -> int:
    key = name.strip().upper().replace("-", "_")
    aliases = {"SNI": "SERVER_NAME", "GROUPS": "SUPPORTED_GROUPS", "EMS": "EXTENDED_MASTER_SECRET",
               "SCT": "SIGNED_CERTIFICATE_TIMESTAMP", "OCSP": "STATUS_REQUEST",
               "ETM": "ENCRYPT_THEN_MAC", "ALPS": "APPLICATION_SETTINGS",
               "ELLIPTIC_CURVES": "SUPPORTED_GROUPS", "NPN": "NEXT_PROTOCOL_NEGOTIATION"}
    key = aliases.get(key, key)
    if key in ExtensionType.__members__:
        return int(ExtensionType[key])
    try:
        return int(name, 0)
    except ValueError as e:
        raise KeyError(f"unknown extension {name!r}") from e


class AlertDescription(IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120
    ech_required = 121


def alert_name(value: int) -> str:
    try:
        return AlertDescription(value).name
    except ValueError:
        return f"alert_{value}"


# RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
# RFC 8446 4.1.3: last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates lower
DOWNGRADE_TLS12 = bytes.fromhex("444F574E47524401")
DOWNGRADE_TLS11 = bytes.fromhex("444F574E47524400")

TLS_FALLBACK_SCSV = 0x5600
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
