"""Diagnosis: ``prober diagnose`` names what is on the path; ``prober diff`` compares runs.

plan.py      the diagnostic plan (hello variants, order, connect-and-wait, idle timeout)
rules.py     pure rules: results -> findings with evidence, confidence, next step
findings.py  Finding, and RunView: the results as the rules read them (from JSON)
capture.py   --capture: TTL / IP ID / window of every packet (raw socket)
diff.py      two runs side by side
report.py    the document (JSON) and its text form
command.py   the two commands (argparse only at import)
"""
