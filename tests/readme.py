"""The Python blocks of README.md, so that tests configure the app with the README's text verbatim."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(heading: str) -> list[str]:
    """Every ```python block in the README section whose heading is ``heading`` (up to the next ``## ``)."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 2)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def settings_from(heading: str, index: int = 0) -> dict[str, Any]:
    """The names a README settings block assigns (``RESILIENCE``, ``REST_FRAMEWORK``, ...), run as pasted."""
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks(heading)[index], f"README.md {heading}", "exec"), namespace)  # noqa: S102 - our own README
    return {name: value for name, value in namespace.items() if name.isupper()}


def all_python_blocks() -> list[tuple[str, str]]:
    """(section heading, code) of every ```python block in the README, in order."""
    text = README.read_text()
    headings = [(m.start(), m.group(0)) for m in re.finditer(r"^## .*$", text, flags=re.MULTILINE)]
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL):
        heading = [h for pos, h in headings if pos < match.start()]
        blocks.append((heading[-1] if heading else "", match.group(1)))
    return blocks
