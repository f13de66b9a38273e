"""prober: an active TLS handshake prober and compatibility tester."""

__version__ = "0.1.0"
