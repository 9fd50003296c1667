"""The import graph of bench/ and methods/: no cycles among module-level imports, and every
import inside a function says why it waits (a heavy or optional library kept off start-up, or
a cycle it avoids) in a comment on its line or the line above."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
             known: dict) -> set[str]:
    """The modules of ours that `node` makes `name` import: a submodule named in a from-import
    is that submodule, not its package."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:
        parts = name.split(".")[:None if is_package else -1]
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join([*parts, *([base] if base else [])])
    out = set()
    for a in node.names:
        if f"{base}.{a.name}" in known:
            out.add(f"{base}.{a.name}")
        elif base in known:
            out.add(base)
    return out


def top_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (TYPE_CHECKING blocks do not)."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            out += [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
        elif isinstance(node, ast.Try):
            out += [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
    return out


def test_the_module_level_import_graph_has_no_cycles():
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        graph[name] = set().union(*[imported(n, name, path.name == "__init__.py", known)
                                    for n in top_level(tree)]) - {name}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


def test_every_import_inside_a_function_says_why_it_waits():
    silent = []
    for path in sorted(modules().values()):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    line, above = lines[sub.lineno - 1], lines[sub.lineno - 2].strip()
                    if "#" not in line and not above.startswith("#") and \
                            not _in_commented_block(lines, sub.lineno):
                        silent.append(f"{path.relative_to(ROOT)}:{sub.lineno}: {line.strip()}")
    assert silent == []


def _in_commented_block(lines: list[str], lineno: int) -> bool:
    """A run of imports with one comment above its first line counts as commented, also when
    isort splits it into sections (third-party, then ours) with a blank line between them."""
    def is_import(i: int) -> bool:
        return i >= 0 and lines[i].strip().startswith(("import ", "from "))

    i = lineno - 2
    while is_import(i) or (i >= 1 and not lines[i].strip() and is_import(i - 1)):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_reading_results_loads_no_torch():
    """bench.results (tables, run.json) is what a notebook or a report on another machine
    reads: it must not pull torch in (several seconds)."""
    code = ("import sys, bench.results as r; r.table([dict(task='t', method='random', "
            "optimizer='fixed', scheduler='pbt', repetition=0, trial=0, epoch=1, "
            "trial_start=0.0, train_seconds=1.0, train_seconds_cum=1.0)]); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
