"""Hostile servers: real TCP listeners on 127.0.0.1 that complete a genuine TLS 1.3 key
exchange and then send what no sane server would (decompression bombs, all-padding
records, broken certificates).  Each test runs the real CLI against one and checks the
run survives with the right outcome."""
