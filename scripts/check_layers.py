"""The layering checks import-linter cannot make (run by `make lint` and the tests).

1. Import cycles among prober's modules, imports inside functions and under
   TYPE_CHECKING included: there must be none.
2. Calls that open a socket, a listener or a TLS context without importing anything
   (``loop.create_connection``, ``asyncio.open_connection``, ``ssl.SSLContext``...):
   only modules under ``prober/net/`` may make them.

    python scripts/check_layers.py [PACKAGE_DIR]     (default: prober/ beside this script)

Exit status 0 when both hold, 1 with one line per violation otherwise.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# attribute or function names whose call opens a connection, a listener or a TLS session
SOCKET_CALLS = frozenset({
    "socket", "socketpair", "create_connection", "open_connection", "start_server",
    "create_server", "create_datagram_endpoint", "create_unix_connection",
    "open_unix_connection", "start_unix_server", "create_unix_server",
    "connect_accepted_socket", "sock_connect", "sock_accept", "wrap_socket", "wrap_bio",
    "SSLContext", "create_default_context", "getaddrinfo", "gethostbyname", "urlopen",
})
NET_PACKAGE = "net"


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path, modules: set[str]) -> set[str]:
    """The prober modules ``path`` imports, wherever the import statement sits."""
    me = module_name(root, path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in modules:
                    out.add(sub)  # `from pkg import module`
                elif target in modules:
                    out.add(target)
    out.discard(me)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def socket_calls(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) \
                else None
            if name in SOCKET_CALLS:
                out.append((node.lineno, name))
    return out


def check(root: Path) -> list[str]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(root, p) for p in files}
    graph = {module_name(root, p): imports_of(root, p, modules) for p in files}
    problems = [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    net = root / NET_PACKAGE
    for p in files:
        if net in p.parents:
            continue
        for line, name in socket_calls(p):
            problems.append(f"{p.relative_to(root.parent)}:{line}: {name}() opens a socket "
                            f"outside {root.name}/{NET_PACKAGE}/")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "prober"
    if not (root / "__init__.py").is_file():
        print(f"check_layers: {root} is not a package directory", file=sys.stderr)
        return 2
    problems = check(root.resolve())
    for line in problems:
        print(line)
    n = len(list(root.rglob("*.py")))
    print(f"check_layers: {n} modules, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
