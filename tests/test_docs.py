"""The plugin guide's code runs: its ```python blocks, in order, in one namespace (blocks meant
for reading only use another fence, e.g. ```toml or ```text)."""

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
