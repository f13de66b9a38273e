"""The sslyze scan of one endpoint (``policy --deep``): the only place sslyze runs.

sslyze never resolves a name here: it is always given the address to connect to and
the SNI as its hostname. Blocking (sslyze runs its own threads); from asyncio, call it
with ``asyncio.to_thread``. What the results mean is :mod:`prober.policy.deep`'s.
"""

from __future__ import annotations

import ipaddress
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _location(host: str, address: str | None) -> str:
    if address:
        return address
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(
            f"{host!r}: pass the address the probes used (address=...); sslyze is never "
            "left to resolve a name") from None


def scan(host: str, port: int, sni: str | None, address: str | None, timeout: float,
          commands: Iterable[str], ca_file: str | Path | None,
          starttls: str | None = None) -> Any:
    from sslyze.connection_helpers.opportunistic_tls_helpers import (
        ProtocolWithOpportunisticTlsEnum,
    )
    from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.scanner.models import ScanCommandsExtraArguments, ServerScanRequest
    from sslyze.scanner.scanner import Scanner
    from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

    # sslyze's bundled trust stores hold a root with a negative serial number; the
    # warning is about sslyze's data, not the endpoint, and would only confuse
    warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")
    ip = _location(host, address)
    name = sni or ip
    location = ServerNetworkLocation(hostname=name, port=port, ip_address=ip)
    # sslyze speaks the same preambles (prober.wire.starttls's names, upper-cased)
    opportunistic = (ProtocolWithOpportunisticTlsEnum(starttls.upper()) if starttls else None)
    network = ServerNetworkConfiguration(tls_server_name_indication=name,
                                         tls_opportunistic_encryption=opportunistic,
                                         xmpp_to_hostname=name if starttls == "xmpp" else None,
                                         network_timeout=max(1, math.ceil(timeout)),
                                         network_max_retries=2)
    scan_commands = {ScanCommand[c] for c in commands}
    extra = ScanCommandsExtraArguments()
    if ca_file is not None and ScanCommand.CERTIFICATE_INFO in scan_commands:
        extra = ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file)))
    request = ServerScanRequest(server_location=location, network_configuration=network,
                                scan_commands=scan_commands, scan_commands_extra_arguments=extra)
    scanner = Scanner()
    scanner.queue_scans([request])
    return next(iter(scanner.get_results()))


def version() -> str:
    from sslyze.__version__ import __version__

    return str(__version__)


def mozilla_commands() -> set[str]:
    """The scan commands sslyze's Mozilla checker needs."""
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )

    return {c.name for c in SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER}


def check_mozilla(result: Any, level: str) -> tuple[bool | None, dict[str, Any], str | None]:
    """sslyze's Mozilla checker on a scan: (compliant, issues, error); None when the scan
    lacks what the checker needs."""
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    config = MozillaTlsConfiguration.get(TlsConfigurationEnum(level))
    try:
        check_server_against_tls_configuration(result, config)
    except ServerNotCompliantWithTlsConfiguration as e:
        return False, dict(e.issues), None
    except ServerScanResultIncomplete as e:
        return None, {}, str(e)
    return True, {}, None
