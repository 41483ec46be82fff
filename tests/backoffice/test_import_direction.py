"""The apps import in one direction only: accounts <- billing <- onboarding <- privacy <-
backoffice.

Each app may import only itself and the apps before it. The one exception: accounts may
read the plan catalogue ``billing.plans``, which therefore must stay a leaf that imports
no app. Every import counts, including those inside functions and in migrations, because
a late import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["accounts", "billing", "onboarding", "privacy", "backoffice"]
# (importing app, imported module): the allowed exceptions to ORDER.
EXCEPTIONS = {("accounts", "billing.plans")}
LEAF = "billing/plans.py"


def _imports(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Each import statement's line and the modules it may name.

    `from billing import plans` may name the module billing.plans, so it lists both
    "billing" and "billing.plans"; the statement is allowed when any of them is.
    """
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, [alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            found.append((node.lineno, names))
    return found


def _app_imports(path: Path) -> list[tuple[int, list[str]]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(line, names) for line, names in _imports(tree) if names[0].split(".")[0] in ORDER]


def _allowed(app: str, module: str) -> bool:
    if ORDER.index(module.split(".")[0]) <= ORDER.index(app):
        return True
    return any(
        app == exc_app and (module == exc_mod or module.startswith(exc_mod + "."))
        for exc_app, exc_mod in EXCEPTIONS
    )


def test_apps_import_only_apps_before_them() -> None:
    offences = []
    for app in ORDER:
        for path in sorted((ROOT / app).rglob("*.py")):
            for line, names in _app_imports(path):
                if not any(_allowed(app, name) for name in names):
                    offences.append(f"{path.relative_to(ROOT)}:{line}: imports {names[0]}")
    assert not offences, (
        "Imports against accounts <- billing <- onboarding <- privacy <- backoffice:\n"
        + ("\n".join(offences))
    )


def test_plan_catalogue_imports_no_app() -> None:
    path = ROOT / LEAF
    offences = [f"{LEAF}:{line}: imports {names[0]}" for line, names in _app_imports(path)]
    assert not offences, "billing/plans.py must stay a leaf:\n" + "\n".join(offences)
