"""Diagnosis: ``prober diagnose`` names what is on the path; ``prober diff`` compares runs.

plan/        the diagnostic plan (hello variants, steps and their order, the runner,
             connect-and-wait, idle timeout)
rules/       pure rules: results -> findings with evidence, confidence, next step; one
             module per kind of cause, run in the order rules.RULES gives
findings.py  Finding, and RunView: the results as the rules read them (from JSON)
capture.py   --capture: TTL / IP ID / window of every packet (raw socket)
diff.py      two runs side by side
report.py    the document (JSON) and its text form
command.py   the two commands (argparse only at import)
"""
