"""The attempt document: one attempt as reported, as streamed to JSON lines and as
written in every run document (``attempts``). Its keys are part of the JSON contract
(README, "JSON")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prober.core.outcome import Outcome, spoke_first
from prober.net.attempt import Observation
from prober.wire import peertext
from prober.wire.certificates import describe
from prober.wire.constants import alert_name
from prober.wire.registry import group_name, sig_name, suite_name, suite_openssl_name, version_name


@dataclass
class AttemptResult:
    """One attempt, as reported and as streamed to JSON lines."""

    id: int
    target: str
    host: str
    port: int
    address: str | None
    sni: str | None
    profile: str
    repeat: int
    outcome: Outcome
    detail: str
    started_at: float
    obs: Observation | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "target": self.target, "host": self.host, "port": self.port,
            "address": self.address, "sni": self.sni, "profile": self.profile,
            "repeat": self.repeat, "outcome": self.outcome, "detail": self.detail,
            "started_at": round(self.started_at, 6),
        }
        if self.error:
            out["error"] = self.error
        obs = self.obs
        if obs is None:
            return out
        f = obs.flight
        out["local_address"] = obs.local_address
        out["local_port"] = obs.local_port
        out["hello_bytes"] = obs.hello_bytes
        out["end"] = obs.end
        out["timings_ms"] = {k: _r(v) for k, v in (
            ("connect", obs.t_connect), ("hello_sent", obs.t_sent), ("hello_acked", obs.t_acked),
            ("first_byte", obs.t_first_byte), ("total", obs.t_end))}
        if spoke_first(obs):
            # timings_ms.first_byte comes before hello_sent: the reply times of the
            # summaries count from the connection for this attempt
            out["spoke_first"] = True
        if obs.starttls is not None:
            out["timings_ms"]["starttls"] = _r(obs.t_starttls)
            out["starttls"] = obs.starttls.to_json()
        out["tcp"] = {"acked": obs.acked, "unacked": obs.tcp_unacked,
                      "retransmits": obs.tcp_retransmits, "rtt_us": obs.tcp_rtt_us,
                      "snd_mss": obs.tcp_snd_mss}
        if f is not None:
            neg: dict[str, Any] = {}
            if f.version is not None:
                neg["version"] = version_name(f.version)
            if f.suite is not None:
                neg["suite"] = suite_name(f.suite)
                neg["suite_openssl"] = suite_openssl_name(f.suite)
            if f.group is not None:
                neg["group"] = group_name(f.group)
            if f.dh_bits is not None:
                neg["dh_bits"] = f.dh_bits
            if f.alpn is not None:
                neg["alpn"] = peertext.json_value(f.alpn)
            if f.hrr_group is not None:
                neg["hrr_group"] = group_name(f.hrr_group)
            if f.downgrade_sentinel:
                neg["downgrade_sentinel"] = f.downgrade_sentinel
            if f.decrypted is not None:
                neg["decrypted"] = f.decrypted
            for k in ("secure_renegotiation", "extended_master_secret", "session_ticket"):
                v = getattr(f, k)
                if v is not None:
                    neg[k] = v
            if f.ocsp_stapled:
                neg["ocsp_stapled"] = True
            if f.cert_request:
                neg["certificate_request"] = True
                neg["certificate_request_cas"] = list(f.cert_request_cas)
            if f.signature_scheme is not None:
                neg["signature_scheme"] = sig_name(f.signature_scheme)
            if f.certificate_compression:
                neg["certificate_compression"] = f.certificate_compression
            out["negotiated"] = neg
            if f.alert is not None:
                out["alert"] = {"description": alert_name(f.alert), "code": f.alert,
                                "level": f.alert_level, "encrypted": f.alert_encrypted}
            out["server_bytes"] = f.bytes_received
            out["server_messages"] = list(f.messages)
            if f.banner:
                out["banner"] = peertext.json_value(f.banner)
            if f.certificates:
                # plain values only, never raises: a broken certificate is marked
                # undecodable and costs nothing else
                out["certificate"] = describe(f.certificates[0])
                out["chain_length"] = len(f.certificates)
            elif f.certificate_undecodable:
                out["certificate"] = {"undecodable": True, "error_kind": "compression",
                                      "error": f.certificate_undecodable}
        out.update(self.data)
        return out


# the key of an attempt's document naming the attempt it retries (README, "JSON")
RETRY_OF = "retry_of"


def retried_ids(results: Iterable[AttemptResult]) -> set[int]:
    """Ids of the attempts a later attempt retried (``data["retry_of"]``, set by the
    commands that retry an attempt turned away for load)."""
    return {r.data[RETRY_OF] for r in results if r.data.get(RETRY_OF) is not None}


def last_tries(results: Sequence[AttemptResult]) -> list[AttemptResult]:
    """Each attempt's last try: the results no later attempt retried, in their order.
    What an endpoint answered each planned attempt; the retried ones stay in the record."""
    redone = retried_ids(results)
    return [r for r in results if r.id not in redone]


def last_try_docs(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``last_tries`` of attempt documents (a run's ``attempts`` as read back from JSON, or
    rows carrying ``id`` and ``retry_of``): each planned attempt once, as its last try."""
    redone = {d[RETRY_OF] for d in docs if d.get(RETRY_OF) is not None}
    return [d for d in docs if d["id"] not in redone]


def _r(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)
