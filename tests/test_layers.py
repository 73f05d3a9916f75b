"""Imports point downward only (docs/design.md): a new import that breaks a layer fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"

# Module (first component under aggregator/) -> layer. Within layer 2, leaf modules do not
# import each other; a module may import only from strictly lower layers.
LAYERS = {
    "models": 0, "errors": 0, "config": 0, "__init__": 0,
    "text": 1, "dates": 1, "locks": 1, "doctype": 1, "frames": 1,
    "fetch": 2, "parse": 2, "store": 2, "cluster": 2, "publish": 2, "opml": 2, "metrics": 2,
    "pipeline": 3, "parseworker": 3,
    "scheduler": 4, "web": 4,
    "cli": 5, "__main__": 6,
}  # fmt: skip


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("aggregator")
        ):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "aggregator" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_module_has_a_layer() -> None:
    missing = {module_of(p) for p in PACKAGE.rglob("*.py")} - set(LAYERS) - {"_defaults"}
    assert not missing, f"add these modules to LAYERS: {sorted(missing)}"


def test_imports_point_downward_only() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        mine = module_of(path)
        if mine not in LAYERS:
            continue
        for other in imported_modules(path):
            if other == mine or other == "__version__":
                continue
            if other not in LAYERS:
                continue
            if LAYERS[other] >= LAYERS[mine] and not (LAYERS[mine] == 0 and LAYERS[other] == 0):
                violations.append(f"{path.relative_to(PACKAGE)} imports {other}")
    assert not violations, violations
