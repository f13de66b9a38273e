"""The expectations example shipped inside the package: `--expect example:demo` reads it
from the installed package, `--example demo` prints it to start a file from, and it holds
against the demo endpoint it describes (the user-install CI job runs the same check on
the installed wheel)."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from prober.check.expectations import examples, load
from prober.cli.demo import demo_endpoint, load_policy
from prober.cli.main import main
from prober.profiles.loader import resolve

SHIPPED = resources.files("prober").joinpath("data", "examples", "expect-demo.yaml")
GATE = Path(__file__).resolve().parents[2] / ".ci" / "expect.yaml"


def test_examples_are_listed_and_load() -> None:
    assert examples() == ["demo"]
    exp = load("example:demo")
    assert exp.path == "example:demo"
    assert exp.policy_equals == "ELBSecurityPolicy-FS-1-2-Res-2020-10"
    for rule in exp.profiles:
        for name in rule.profiles:
            assert resolve(name), name


def test_example_prints_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["check", "--example", "demo"])  # no TARGET or --expect needed
    assert e.value.code == 0
    assert capsys.readouterr().out == SHIPPED.read_text(encoding="utf-8")


@pytest.mark.parametrize("argv", [["check", "--example", "nope"],
                                  ["check", "127.0.0.1:9", "--expect", "example:nope"]])
def test_an_unknown_example_is_one_line(argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == "prober: example:nope: no such example (demo)\n"


def test_the_demo_example_holds_against_the_demo_endpoint(
        capsys: pytest.CaptureFixture[str]) -> None:
    with demo_endpoint(load_policy()) as listeners:
        rc = main(["check", f"127.0.0.1:{listeners.front_port}", "--expect", "example:demo"])
    out = capsys.readouterr()
    assert rc == 0, out.out
    assert "14 passed, 0 failed" in out.err


def test_the_example_is_the_project_gate_without_the_diagnosis() -> None:
    """.ci/expect.yaml (the project's own gate) adds only `no_findings` (a diagnose run
    per target): the rest must not drift apart from the shipped example."""
    gate, example = load(GATE), load("example:demo")
    assert gate.no_findings and not example.no_findings
    assert replace(gate, path="", no_findings=[]) == replace(example, path="")
