"""The plugin guide's code runs: its ```python blocks, in order, in one namespace (blocks meant
for reading only use another fence, e.g. ```toml or ```text). The README and every docs page
name only real `ohobench` flags and suite keys, and their links resolve inside the repository."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_only_python_fences_are_taken():
    text = "a\n```python\nx = 1\n```\n```toml\n[x]\n```\n```python\ny = x\n```\n"
    assert PYTHON_BLOCK.findall(text) == ["x = 1\n", "y = x\n"]


@pytest.mark.parametrize("name", ["plugins.md"])
def test_the_docs_python_blocks_run_in_order(name):
    blocks = PYTHON_BLOCK.findall((DOCS / name).read_text())
    assert len(blocks) >= 5
    namespace: dict = {"__name__": f"docs_{name}"}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{name}, python block {i}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{name}, python block {i} of {len(blocks)} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc


# --- The README and every docs page agree with the code, and their links resolve ------------

ROOT = DOCS.parent
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.~])/work/")
SUITE_TABLES = ("space", "options", "scheduler")  # tables of a suite file, their keys not checked
PYPROJECT_TABLES = ("project", "tool", "build-system")  # a plugin's pyproject.toml, not a suite
OTHER_COMMANDS = ("python", "ray", "pytest", "pip", "tox", "bash", "git", "ruff", "jupyter")


def cli_flags() -> dict[str, set[str]]:
    """Option strings per `ohobench` subcommand, and under "" those of any subcommand."""
    from bench.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    flags = {name: {s for a in sub._actions for s in a.option_strings}
             for name, sub in commands.items()}
    flags[""] = set().union(*flags.values()) | {"--help"}
    return flags


def prose(text: str) -> str:
    """`text` with its fenced blocks blanked (their lines kept, for line numbers)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def bash_commands(block: str) -> list[str]:
    """The commands of a bash block, continuation lines joined."""
    return [c for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def flag_problems(name: str, text: str, flags: dict[str, set[str]]) -> list[str]:
    found = []
    for lang, block in FENCE.findall(text):
        if lang not in ("bash", "sh", ""):
            continue
        for command in bash_commands(block):
            code = command.split("#")[0]  # flags in comments are prose
            for part in re.split(r"&&|\|\||;|\|", code):
                words = part.split()
                if "ohobench" not in words:
                    continue
                rest = words[words.index("ohobench") + 1:]
                sub = rest[0] if rest and rest[0] in flags else ""
                found += [f"{name}: `{' '.join(command.split())}`: ohobench {sub} has no {f}"
                          for w in rest for f in FLAG.findall(w) if f not in flags[sub]]
    for n, line in enumerate(prose(text).splitlines(), 1):
        if "ohobench" not in line:
            continue
        spans = re.findall(r"`([^`]*)`", line)
        foreign = [s for s in spans if s.split()[:1] and s.split()[0] in OTHER_COMMANDS]
        for s in foreign:
            line = line.replace(f"`{s}`", "")
        found += [f"{name}:{n}: {f} is no flag of any ohobench command"
                  for f in FLAG.findall(line) if f not in flags[""]]
    return found


def toml_key_problems(name: str, text: str) -> list[str]:
    from bench.suite import FIELDS

    found = []
    for lang, block in FENCE.findall(text):
        if lang != "toml":
            continue
        headers = re.findall(r"^\s*\[+\s*([\w-]+)", block, re.MULTILINE)
        if any(h in PYPROJECT_TABLES for h in headers):
            continue
        found += [f"{name}: [{h}] is no table of a suite file ({', '.join(SUITE_TABLES)})"
                  for h in headers if h not in SUITE_TABLES]
        top = block.split("\n[", 1)[0] if not block.lstrip().startswith("[") else ""
        for line in top.splitlines():
            key = re.match(r"\s*([A-Za-z_][\w-]*)\s*=", line)
            if key and key.group(1) not in FIELDS:
                found.append(f"{name}: suite key {key.group(1)!r} is no field of "
                             "bench.suite.Suite")
    return found


def link_problems(page: Path, text: str) -> list[str]:
    found = []
    for target in LINK.findall(prose(text)):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):  # a pure #anchor, http(s), mailto
            continue
        if not (page.parent / path).exists():
            found.append(f"{page.name}: the link {target!r} resolves to nothing")
        elif not (page.parent / path).resolve().is_relative_to(ROOT.resolve()):
            found.append(f"{page.name}: the link {target!r} leaves the repository")
    return found


def test_flag_and_key_checks_see_what_they_should():
    flags = {"": {"--suite", "--help"}, "run": {"--suite"}, "report": {"--plots"}}
    text = ("run `ohobench run --suite x` or `ohobench run --nope`; `python b.py --threads 1`\n"
            "```bash\nohobench report R --plots \\\n    --suite x   # --nope too\n```\n"
            "```toml\nname = 'x'\ntrials = 3\nfoo = 1\n[space]\nbar = 2\n[options.oho]\n"
            "baz = 1\n```\n```toml\n[project.entry-points.x]\nq = 'm:C'\n```\n")
    assert flag_problems("t", text, flags) == [
        "t: `ohobench report R --plots --suite x # --nope too`: ohobench report has no --suite",
        "t:1: --nope is no flag of any ohobench command"]
    assert toml_key_problems("t", text) == [
        "t: suite key 'foo' is no field of bench.suite.Suite"]
    page = DOCS / "x.md"
    assert link_problems(page, "[a](running.md#x) [b](nothing.md) [c](#y) [d](https://e.f)\n"
                               "```bash\n[not](a-link.md)\n```\n") == [
        "x.md: the link 'nothing.md' resolves to nothing"]


# Pages known to fail, with why; strict, so that the fix must also remove the entry here.
KNOWN: dict[str, str] = {}  # page -> why it is known to fail (an xfail, strict)


@pytest.mark.parametrize("page", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN[p.name]))
    if p.name in KNOWN else p for p in PAGES], ids=lambda p: p.name)
def test_the_pages_name_real_flags_keys_and_files(page):
    """Every `ohobench` flag a page names exists in the CLI's parser, every key of a suite
    file it shows is a field of bench.suite.Suite, every relative link resolves to a file of
    the repository, nothing points outside it (a user's clone has no ../shared or /work), and
    docs/running.md documents every field of bench.suite.Suite."""
    text = page.read_text()
    problems = flag_problems(page.name, text, cli_flags()) + toml_key_problems(page.name, text)
    problems += link_problems(page, text)
    problems += [f"{page.name}:{n}: points outside the repository: {line.strip()}"
                 for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    if page.name == "running.md":  # the reference of suite keys documents every one of them
        from bench.suite import FIELDS

        problems += [f"running.md does not document the suite key {k!r}" for k in FIELDS
                     if f"`{k}`" not in text and f"`[{k}" not in text]
    assert not problems, "\n".join(problems)
