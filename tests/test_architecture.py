"""The import rules of docs/architecture.md, checked on the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

#: What each part may import from the others (its own modules are always allowed).
ALLOWED = {
    "gateware": set(),
    "soft": {"gateware"},
    "boards": {"gateware"},
    "sim": {"gateware", "soft"},
}
#: The CLI sits on top of everything.
TOP_OF_GRAPH = {ROOT / "soft" / "cli.py"}


def _refmeter_imports(path: Path) -> set[str]:
    """The refmeter parts (gateware, soft, sim, boards) a module imports."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        parts |= {name.split(".")[1] for name in names
                  if name.startswith("refmeter.") and name.count(".") >= 1}
    return parts


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_run_one_way(part):
    """gateware imports no other part; soft and boards only gateware; sim not boards."""
    violations = []
    for path in sorted((ROOT / part).rglob("*.py")):
        if path in TOP_OF_GRAPH:
            continue
        forbidden = _refmeter_imports(path) - ALLOWED[part] - {part}
        if forbidden:
            violations.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(forbidden))}")
    assert not violations, "\n".join(violations)

