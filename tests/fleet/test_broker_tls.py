"""A broker over TLS (`rediss://`): a real redis-server serving TLS only, with the test
PKI's certificate, a real `prober agent` and `prober fleet run` on it, and a real TLS
endpoint on loopback to probe."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.harness import Agent, agents, fleet, redis_server, redis_tls_missing, sql
from tests.peers.pki import Pki

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    """The broker's rediss:// URL, without options."""
    reason = redis_tls_missing()
    if reason:
        pytest.skip(reason)
    with redis_server(tmp_path_factory.mktemp("redis-tls"), tls=pki) as url:
        yield url


def inventory(path: Path, port: int) -> Path:
    path.write_text(f"schema: 1\ndefaults: {{profiles: [tls1.2-only]}}\ngroups:\n"
                    f"  - name: web\n    endpoints:\n"
                    f"      - {{target: '127.0.0.1:{port}', name: web}}\n")
    return path


def test_the_broker_port_speaks_tls_only(tls_broker: str) -> None:
    import redis

    plain = redis.Redis.from_url(tls_broker.replace("rediss://", "redis://"),
                                 socket_connect_timeout=5, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    plain.close()


def test_agent_and_coordinator_over_tls_with_a_private_ca(
        tmp_path: Path, tls_broker: str, pki: Pki, python_tls_server_factory: Any) -> None:
    endpoint = python_tls_server_factory()
    store = tmp_path / "fleet.sqlite"
    # both spellings of the verification flag: Celery's on the agent, redis-py's on the
    # coordinator
    agent_url = f"{tls_broker}?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={pki.ca_cert}"
    coordinator_url = f"{tls_broker}?ssl_ca_certs={pki.ca_cert}&ssl_cert_reqs=required"
    with agents() as started:
        started.append(Agent(tmp_path, agent_url, "tls", [f"127.0.0.1/32:{endpoint.port}"],
                             name="tls1").ready())
        r = fleet("run", str(inventory(tmp_path / "inv.yaml", endpoint.port)),
                  "--store", str(store), "--broker", coordinator_url, "--vantage", "tls")
        log = started[0].log()
    assert r.returncode == 0, r.stderr + log[-2000:]
    # the task was run by that agent, whose lease client went over TLS too
    assert sql(store, "SELECT endpoint, vantage, status, agent FROM tasks") == [
        ("web", "tls", "done", "tls1")]
    assert sql(store, "SELECT outcome FROM attempts") == [("ok",)]
    assert "Traceback" not in log


def test_an_unknown_ca_is_a_one_line_error_on_both_sides(
        tmp_path: Path, tls_broker: str) -> None:
    """No ssl_ca_certs: the default verification refuses the test CA's certificate, and
    both the agent and the coordinator say so in one line and stop (exit 2)."""
    inv = inventory(tmp_path / "inv.yaml", 443)
    r = fleet("run", str(inv), "--store", str(tmp_path / "s.sqlite"), "--broker",
              tls_broker, "--vantage", "tls", timeout=60)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "CERTIFICATE_VERIFY_FAILED" in err and "ssl_ca_certs" in err, err

    agent = Agent(tmp_path, tls_broker, "tls", ["127.0.0.1/32:443"], name="unverified")
    try:
        assert agent.proc.wait(60) == 2
    except subprocess.TimeoutExpired:
        pytest.fail(f"the agent kept running: {agent.log()[-2000:]}")
    finally:
        agent.stop()
    said = agent.log().strip()
    assert len(said.splitlines()) == 1, said
    assert "CERTIFICATE_VERIFY_FAILED" in said, said


def test_celery_broker_and_backend_clients_verify_with_the_url_ca(tls_broker: str,
                                                                   pki: Pki) -> None:
    """Beyond the first PING: the clients Celery itself makes (kombu's broker channel,
    the result backend) go over TLS with verification on and the URL's CA; kombu alone
    would not verify a bare rediss:// at all."""
    from prober.fleet.celeryapp import make_app

    app = make_app(f"{tls_broker}?ssl_ca_certs={pki.ca_cert}")
    backend = app.backend.connparams
    assert (backend["connection_class"].__name__, int(backend["ssl_cert_reqs"]),
            backend["ssl_ca_certs"]) == ("SSLConnection", 2, str(pki.ca_cert))  # REQUIRED
    assert app.backend.client.ping()
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["ssl_cert_reqs"], kwargs["ssl_ca_certs"]) == ("required",
                                                                      str(pki.ca_cert))
        assert client.ping()
