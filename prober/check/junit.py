"""JUnit XML: one test case per expectation, the evidence in the failure text.

The evidence quotes what servers sent (details, certificate names, ALPN): every text
and attribute goes through prober.report.escape on the way out, so the file is
well-formed XML 1.0 whatever they hold (ElementTree escapes ``<`` and ``&`` but writes
control characters as they are, which no XML parser accepts)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from prober.check.evaluate import Verdict
from prober.report.escape import for_xml, for_xml_block


def junit_xml(verdicts: list[Verdict], elapsed: float) -> str:
    suites = ET.Element("testsuites")
    by_target: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_target.setdefault(v.target, []).append(v)
    for target, vs in by_target.items():
        failures = sum(not v.passed for v in vs)
        suite = ET.SubElement(suites, "testsuite", name=f"prober check {target}",
                              tests=str(len(vs)), failures=str(failures), errors="0",
                              time=f"{elapsed:.3f}")
        for v in vs:
            case = ET.SubElement(suite, "testcase", classname=f"prober.check.{target}",
                                 name=v.name, time="0")
            if not v.passed:
                fail = ET.SubElement(case, "failure", message=v.message)
                # a line per piece of evidence, whatever the evidence quotes
                fail.text = "\n".join(for_xml(line) for line in [v.message, *v.evidence])
            else:
                out = ET.SubElement(case, "system-out")
                out.text = for_xml(v.message)
    _make_safe(suites)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _make_safe(root: ET.Element) -> None:
    for el in root.iter():
        for k, v in list(el.attrib.items()):
            el.set(k, for_xml(v))
        if el.text:
            el.text = for_xml_block(el.text)
