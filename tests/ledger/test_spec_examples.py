"""Every ```example block in specs/ is run against the code: each line is an expression that must be true."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ledger

SPECS = Path(__file__).resolve().parents[2] / "specs"
EXAMPLE_BLOCK = re.compile(r"```example ([\w.]+)\n(.*?)```", re.S)


def _namespace() -> dict[str, object]:
    ns: dict[str, object] = {}
    for info in pkgutil.iter_modules(ledger.__path__):
        module = importlib.import_module(f"ledger.{info.name}")
        ns.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    return ns


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SPECS.glob("*.md")):
        for match in EXAMPLE_BLOCK.finditer(path.read_text()):
            for line in match.group(2).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    found.append((f"{path.name}:{match.group(1)}", line))
    return found


EXAMPLES = _examples()


def test_specs_have_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("where,expression", EXAMPLES, ids=[f"{w}:{i}" for i, (w, _) in enumerate(EXAMPLES)])
def test_spec_example(where: str, expression: str) -> None:
    assert eval(expression, _namespace()), f"{where}: {expression}"  # noqa: S307 - our own spec text
