"""Input files are bounded: a YAML file nested past any sense, one whose aliases expand
to millions of values or refer to themselves, or one of 200 MB, is refused with one line
naming the file and exit 2 (it was a RecursionError traceback, or read whole); a log
file of which no line counts is exit 2 with one line, not an empty summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from prober.core.yamlfile import MAX_BYTES, MAX_DEPTH, read_yaml
from tests.hostile.cli import Run, run_prober

PROFILE_HEAD = "schema: 1\nname: hostile\n"


def deep_flow(n: int) -> str:
    return "[" * n + "]" * n


def deep_block(n: int) -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "v: 1\n"


def laughs(levels: int = 9) -> str:
    """Ten aliases of the level below on each level: 10**levels values, a few hundred
    bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "".join(f"  {line}\n" for line in lines)


BAD_DOCUMENTS: dict[str, tuple[str, str]] = {
    "deep-flow": (f"extra: {deep_flow(5000)}\n", f"nested deeper than {MAX_DEPTH} levels"),
    "deep-block": (f"extra:\n{deep_block(300)}", f"nested deeper than {MAX_DEPTH} levels"),
    "alias-bomb": (f"extra:\n{laughs()}", "values once its aliases are expanded"),
    "alias-cycle": ("extra: &x\n  self: *x\n", "an alias refers to a value that contains it"),
    # aliases stacking a shallow value into a deep one
    "alias-depth": ("extra:\n  a0: &a0 [" + "[" * 40 + "]" * 40 + "]\n"
                    "  a1: &a1 [" + "[" * 20 + "*a0" + "]" * 20 + "]\n"
                    "  a2: [" + "[" * 20 + "*a1" + "]" * 20 + "]\n",
                    "levels once its aliases are expanded"),
}


def assert_one_line_refusal(run: Run, path: Path, needle: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("prober: "), run.stderr
    assert f"{path}: " in run.stderr, run.stderr
    assert needle in run.stderr, run.stderr


@pytest.mark.parametrize("kind", sorted(BAD_DOCUMENTS))
def test_read_yaml_refuses(tmp_path: Path, kind: str) -> None:
    body, needle = BAD_DOCUMENTS[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(PROFILE_HEAD + body)
    with pytest.raises(ValueError, match=needle) as e:
        read_yaml(path, ValueError)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_read_yaml_takes_what_real_files_hold(tmp_path: Path) -> None:
    """Anchors and aliases as people use them, and nesting up to the limit, still load."""
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {suites: [a, b]}\none: *b\ntwo: *b\n"
                    f"deep: {deep_flow(MAX_DEPTH - 2)}\n")
    doc = read_yaml(path, ValueError)
    assert doc["one"] == doc["two"] == {"suites": ["a", "b"]}


# the command, the option that reads the file, and what the rest of the file must hold
COMMANDS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "probe --profile": (lambda p: ["probe", "127.0.0.1:9", "-p", str(p)], PROFILE_HEAD),
    "profiles show": (lambda p: ["profiles", "show", str(p)], PROFILE_HEAD),
    "check --expect": (lambda p: ["check", "127.0.0.1:9", "--expect", str(p)], "schema: 1\n"),
    "whatif --policy": (lambda p: ["whatif", "--policy", str(p), "--clients", "tls1.2-only"],
                        "name: hostile\nprotocols: [TLSv1.2]\n"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["deep-flow", "alias-bomb"])
def test_commands_refuse_hostile_yaml(tmp_path: Path, command: str, kind: str) -> None:
    argv, head = COMMANDS[command]
    body, needle = BAD_DOCUMENTS[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(head + body)
    assert_one_line_refusal(run_prober(tmp_path, *argv(path), timeout=60), path, needle)


def test_a_200_mb_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.write(PROFILE_HEAD.encode() + b"extra: '")
        fh.truncate(200 << 20)  # sparse: 200 MB of NUL bytes that cost no disk
    run = run_prober(tmp_path, "probe", "127.0.0.1:9", "-p", str(path), timeout=60)
    assert_one_line_refusal(run, path, f"larger than {MAX_BYTES >> 20} MiB")
    # the same start without the file, measured the same way: a forked child's peak RSS
    # counts the parent's pages until its exec, so only the difference says anything
    base = run_prober(tmp_path, "probe", "127.0.0.1:9", "-p", "tls1.2-only", "-t", "0.2",
                      timeout=60)
    assert run.max_rss_kb < base.max_rss_kb + 100_000, (run.max_rss_kb, base.max_rss_kb)


def test_a_log_with_no_usable_line(tmp_path: Path) -> None:
    blank = tmp_path / "blank.log"
    blank.write_text("\n\n\n")
    run = run_prober(tmp_path, "logs", str(blank))
    assert_one_line_refusal(run, blank, "no usable line: 3 lines (blank line: 3)")
    assert run.stdout == ""
    # lines of a known format that are all malformed (the wrong --format)
    conn = tmp_path / "alb.log"
    conn.write_text("2026-11-23T18:00:00.000000Z 192.0.2.1 40000 443 1.0 - - -\n" * 3)
    run = run_prober(tmp_path, "logs", str(conn), "--format", "go")
    assert_one_line_refusal(run, conn, "no usable line: 3 lines")
    # whatif reads its client population the same way
    run = run_prober(tmp_path, "whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                     "--clients", str(blank))
    assert run.returncode == 2 and "no usable line" in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1


def test_diff_of_a_deeply_nested_json(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(deep_flow(100_000))
    run = run_prober(tmp_path, "diff", str(path), str(path))
    assert_one_line_refusal(run, path, "nested too deeply")

