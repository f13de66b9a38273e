"""JUnit XML: one test case per expectation, the evidence in the failure text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from prober.check.evaluate import Verdict


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
                fail.text = "\n".join([v.message, *v.evidence])
            else:
                out = ET.SubElement(case, "system-out")
                out.text = v.message
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
