"""Dependencies point one way (DESIGN.md §2): the apps import `kelabooking`, `kelabooking` (but its settings and root
URLconf) imports no app, each app imports only the apps listed before it in INSTALLED_APPS, and no module imports
itself again through others.

Every Python module of the project is read with `ast` (its migrations, tests and benchmarks too; not the virtualenv).
Every import counts, wherever it is written: a function-local import, the usual way round a circle, runs all the same.
Only an import under `if TYPE_CHECKING:` never runs: it counts for which app may import which, not for circles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
# kelabooking's modules that wire the apps together, and so may import them.
WIRING = {"kelabooking.settings", "kelabooking.urls"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the project module it imports
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`: never run

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    """Every module of the project's packages (a top-level folder with an `__init__.py`), and manage.py."""
    modules = {"manage": ROOT / "manage.py"}
    for package in sorted(path.parent for path in ROOT.glob("*/__init__.py")):
        for path in sorted(package.rglob("*.py")):
            if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts):
                modules[_module_name(path)] = path
    return modules


def _project_module(name: str) -> str | None:
    """`name`, or the package it is in, if that is a project module."""
    modules = project_modules()
    parts = name.split(".")
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[Import] = []
        self.type_checking = False

    def visit_If(self, node: ast.If) -> None:
        guard = node.test
        if (isinstance(guard, ast.Name) and guard.id == "TYPE_CHECKING") or (
            isinstance(guard, ast.Attribute) and guard.attr == "TYPE_CHECKING"
        ):
            self.type_checking = True
            for child in node.body:
                self.visit(child)
            self.type_checking = False
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(_project_module(alias.name), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module.split(".")
            package = package if self.is_package else package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        for alias in node.names:
            # `from package import module` imports the module; `from module import name`, the module.
            full = f"{base}.{alias.name}"
            self._add(full if full in project_modules() else _project_module(base), node)

    def _add(self, target: str | None, node: ast.stmt) -> None:
        if target is not None and target != self.module:
            self.found.append(Import(self.module, target, node.lineno, self.type_checking))


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    visitor = _Imports(module, is_package=is_package)
    visitor.visit(ast.parse(source))
    return visitor.found


@cache
def imports() -> list[Import]:
    return [
        found
        for module, path in project_modules().items()
        for found in imports_of(module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
    ]


def app_order() -> list[str]:
    """The project's apps in INSTALLED_APPS' order: its top-level packages, and the Suomi.fi sandbox, a
    development-only app of its own inside `partners`, installed last: it may import the product, never the reverse."""
    packages = {module.split(".")[0] for module in project_modules()}
    return list(dict.fromkeys(app for app in settings.INSTALLED_APPS if app.split(".")[0] in packages))


def app_of(module: str, order: list[str]) -> str:
    """The app a module belongs to: the longest app name it is in (`partners.sandbox.views` is the sandbox's)."""
    owners = [app for app in order if module == app or module.startswith(f"{app}.")]
    return max(owners, key=len) if owners else module.split(".")[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(edges.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_import_walk__finds_every_kind_of_import_of_a_project_module() -> None:
    """What the checks below read: imports at the top, in a function body, relative ones and type-only ones."""
    source = """
from typing import TYPE_CHECKING
import requests
from kelabooking import clock, services
from .models import Message
if TYPE_CHECKING:
    from bookings.models import Booking
def later():
    import partners.context
    from registry.selectors import organisation_may_book
"""
    found = {(found.target, found.type_checking) for found in imports_of("kelabooking.retention", source)}
    assert found == {
        ("kelabooking.clock", False),
        ("kelabooking.services", False),
        ("kelabooking.models", False),
        ("bookings.models", True),
        ("partners.context", False),
        ("registry.selectors", False),
    }
    modules = project_modules()
    assert {"manage", "kelabooking", "kelabooking.services", "bookings.services.booking", "tests.factories"} <= set(
        modules
    )
    assert not any(".venv" in path.parts for path in modules.values())
    assert app_order() == ["kelabooking", "registry", "partners", "bookings", "partners.sandbox"]


def test_cycles__found_through_however_many_modules() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kelabooking__imports_no_app() -> None:
    order = app_order()
    apps = set(order) - {"kelabooking"}
    wrong = [
        str(found)
        for found in imports()
        if found.module.split(".")[0] == "kelabooking"
        and found.module not in WIRING
        and app_of(found.target, order) in apps
    ]
    assert wrong == [], "kelabooking imports an app: let the app fill a registry in its AppConfig.ready() instead"


def test_apps__import_only_kelabooking_and_the_apps_before_them_in_installed_apps() -> None:
    order = app_order()
    packages = {module.split(".")[0] for module in project_modules()}
    wrong = []
    for found in imports():
        app, target = app_of(found.module, order), app_of(found.target, order)
        if app not in order or app == target or found.module in WIRING:
            continue  # tests, benchmarks and manage.py may import any app
        if target not in order or order.index(target) > order.index(app):
            wrong.append(f"{found} ({target} is {'not an app' if target in packages - set(order) else 'after'} {app})")
    assert wrong == []


def test_modules__import_no_circle() -> None:
    edges: dict[str, set[str]] = {}
    for found in imports():
        if not found.type_checking:
            edges.setdefault(found.module, set()).add(found.target)
    circles = cycles(edges)
    where = [
        [str(found) for found in imports() if found.module in circle and found.target in circle] for circle in circles
    ]
    assert where == []
