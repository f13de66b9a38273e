"""CI gate: expectations about an endpoint, checked against a live run."""
