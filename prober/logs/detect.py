"""Which format a file is in, from its first lines that look like any format.

Corrupt lines and a server's unrelated lines come first in real files, so the first
lines that match a format vote; the format with most votes wins.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import cache

from prober.logs import formats as logs_formats

FORMATS = ("alb-conn", "alb-access", "nlb", "classic-elb", "cloudfront", "vpc-flow", "go",
           "nginx", "haproxy")
# formats with one line per HTTP request, in which only completed handshakes appear
PER_REQUEST = {"alb-access": "ALB access logs", "classic-elb": "Classic ELB access logs",
               "cloudfront": "CloudFront standard logs"}
VOTES = 20  # matching lines that decide
SCAN_LINES = 1000  # lines read at most before giving up

_ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?"
_ALB_CONN = re.compile(rf"{_ISO} [0-9A-Fa-f.:]+ \d+ \d+ \S+ \S+ \S+ ")
_NGINX = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[[a-z]+\] \d+#\d+: ")
_HOSTPORT = r"(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+):\d+"
_CLASSIC_ELB = re.compile(rf"{_ISO} \S+ {_HOSTPORT} (?:{_HOSTPORT}|-) -?[\d.]+ -?[\d.]+ -?[\d.]+ ")
# a data line in any field order: many tabs, one field a date
_CLOUDFRONT_DATE = re.compile(r"(?:^|\t)\d{4}-\d\d-\d\d(?:\t|$)")
_HAPROXY = re.compile(rf"{_HOSTPORT} \[\d\d/\w{{3}}/\d{{4}}:[\d:.]+\] ")


@cache
def _alb_access() -> re.Pattern[str]:
    types = "|".join(logs_formats.alb_access().enums["type"])
    return re.compile(rf"(?:{types}) {_ISO} \S+ \S+:\d+ ")


@cache
def _nlb() -> re.Pattern[str]:
    enums = logs_formats.nlb_access().enums
    kinds = "|".join(enums["type"])
    versions = "|".join(map(re.escape, enums["version"]))
    return re.compile(rf"(?:{kinds}) (?:{versions}) \d{{4}}-")


def _cloudfront(line: str) -> bool:
    if line.startswith(("#Version:", "#Fields:")):
        return True
    return line.count("\t") >= 10 and _CLOUDFRONT_DATE.search(line) is not None


def _vpc(vpc_fields: int | None) -> Callable[[str], bool]:
    known = frozenset(logs_formats.vpc_field_names())
    default = len(logs_formats.vpc_default_fields())
    verdicts = frozenset(("ACCEPT", "REJECT", "NODATA", "SKIPDATA", "OK"))

    def match(line: str) -> bool:
        t = line.split()
        if len(t) >= 2 and all(x in known for x in t):
            return True  # the header line AWS writes for S3 delivery
        if vpc_fields is not None and len(t) == vpc_fields:
            return True
        return (len(t) == default and t[0].isdigit()
                and any(x.startswith("eni-") or x in verdicts for x in t))

    return match


def detectors(vpc_fields: int | None = None) -> dict[str, Callable[[str], bool]]:
    """Format name -> does this line look like it. Order breaks ties."""
    return {
        "alb-conn": lambda s: _ALB_CONN.match(s) is not None,
        "alb-access": lambda s: _alb_access().match(s) is not None,
        "nlb": lambda s: _nlb().match(s) is not None,
        "classic-elb": lambda s: _CLASSIC_ELB.match(s) is not None,
        "cloudfront": _cloudfront,
        "vpc-flow": _vpc(vpc_fields),
        "go": lambda s: "http: TLS handshake error from " in s,
        "nginx": lambda s: _NGINX.match(s) is not None,
        "haproxy": lambda s: _HAPROXY.search(s) is not None,
    }


def detect(lines: Iterable[str], vpc_fields: Sequence[str] | None = None) -> str | None:
    """The format most of the first matching lines have, or None."""
    tests = detectors(len(vpc_fields) if vpc_fields else None)
    votes: Counter[str] = Counter()
    first: dict[str, int] = {}
    matched = 0
    for i, line in enumerate(lines):
        hit = False
        for name, test in tests.items():
            if test(line):
                votes[name] += 1
                first.setdefault(name, i)
                hit = True
        matched += hit
        if matched >= VOTES:
            break
    if not votes:
        return None
    return max(votes, key=lambda n: (votes[n], -first[n]))
