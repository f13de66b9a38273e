"""``--keylog FILE``: the TLS 1.3 handshake secrets of a run, in SSLKEYLOGFILE format.

Every TLS 1.3 attempt whose ServerHello prober processed contributes a
CLIENT_HANDSHAKE_TRAFFIC_SECRET and a SERVER_HANDSHAKE_TRAFFIC_SECRET line, so that
Wireshark or tshark decrypts the EncryptedExtensions, Certificate, CertificateVerify and
Finished of a ``--pcap`` of the same run. TLS 1.2 and older have nothing to log: their
key log line is the master secret, which a client only has after its own key exchange,
and prober stops at the server's flight.
"""

from __future__ import annotations

from collections.abc import Iterable

from prober.core.attempt import AttemptResult


def lines(results: Iterable[AttemptResult]) -> list[str]:
    out: list[str] = []
    for r in sorted(results, key=lambda r: r.id):
        flight = r.obs.flight if r.obs is not None else None
        if flight is not None and flight.handshake_keys is not None:
            out += flight.handshake_keys.keylog_lines()
    return out


def write(path: str, results: Iterable[AttemptResult]) -> int:
    """Write the key log; returns the number of attempts it covers."""
    ls = lines(results)
    with open(path, "w", encoding="ascii") as fh:
        fh.write("# SSLKEYLOGFILE of a prober run: TLS 1.3 handshake secrets only\n")
        fh.writelines(line + "\n" for line in ls)
    return len(ls) // 2
