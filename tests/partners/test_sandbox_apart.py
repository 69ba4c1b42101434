"""The Suomi.fi sandbox (partners/sandbox) is a development-only app kept apart from the product: nothing outside it and
its own tests (tests/partners/sandbox) imports it, a production process never loads it, its dependencies are not in
the production requirements, and a sandbox switched on without them is refused plainly."""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.kelabooking.test_settings import PRODUCTION, run_manage

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = "partners.sandbox"
# The sandbox's own code and tests may name it; the settings install it and the root URLconf mounts it, both only
# with SUOMIFI_SANDBOX on.
ITS_OWN = (ROOT / "partners" / "sandbox", ROOT / "tests" / "partners" / "sandbox")
WIRING = (ROOT / "kelabooking" / "settings.py", ROOT / "kelabooking" / "urls.py")
NOT_OURS = {"node_modules", "staticfiles", "var", "__pycache__"}
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.M)


def python_files() -> Iterator[Path]:
    """The project's Python files, without virtual environments and other folders of things not ours."""
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".") and name not in NOT_OURS]
        if "pyvenv.cfg" in files:  # a virtual environment by another name
            subdirectories[:] = []
            continue
        yield from (Path(directory) / name for name in files if name.endswith(".py"))


def module_names(path: Path) -> Iterator[str]:
    """Every module the file imports (absolute, relative ones resolved), and every dotted name it passes to a call
    such as import_module() or include() by string."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative: from the file's own package, one package up for each further dot
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            yield from (arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))


def names_the_sandbox(name: str) -> bool:
    return name == SANDBOX or name.startswith(f"{SANDBOX}.")


def test_sandbox__imported__only_by_itself_and_its_own_tests() -> None:
    """Product code, test helpers and the benchmarks reach it through HTTP only: what they share with it (test
    identity codes, the demo's partner) lives in the product, which the sandbox may import."""
    offenders = []
    for path in python_files():
        if path in WIRING or any(path.is_relative_to(folder) for folder in ITS_OWN):
            continue
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in module_names(path) if names_the_sandbox(name)]
    assert not offenders


def test_sandbox__production_process__never_loads_it_or_its_dependencies() -> None:
    """The settings, every app, the admin, the whole URLconf and the Celery tasks loaded, as the production web and
    task workers have them."""
    script = (
        "import json, sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; import kelabooking.wsgi; "
        "from kelabooking import celery_app; celery_app.loader.import_default_modules(); "
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] == 'authlib' "
        "or name == 'partners.sandbox' or name.startswith('partners.sandbox.'))))"
    )
    production = run_manage("-c", script, env=PRODUCTION)
    development = run_manage("-c", script, env={**PRODUCTION, "DEBUG": "1", "SUOMIFI_SANDBOX": "1"})

    assert production.returncode == development.returncode == 0, production.stderr + development.stderr
    assert json.loads(production.stdout.splitlines()[-1]) == []
    loaded = json.loads(development.stdout.splitlines()[-1])
    assert {"authlib", "partners.sandbox", "partners.sandbox.urls"} <= set(loaded)


def pins(name: str) -> dict[str, str]:
    return {package.lower(): version for package, version in PIN.findall((REQUIREMENTS / name).read_text("utf-8"))}


def test_requirements__production__without_the_sandbox_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [re.split(r"[<>=\[ ;]", requirement)[0].lower() for requirement in project["dependencies"]]
    assert "authlib" not in names
    assert any(requirement.lower().startswith("authlib") for requirement in project["optional-dependencies"]["sandbox"])

    assert "authlib" not in pins("base.txt")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    default_image = re.search(r"^ARG REQUIREMENTS=(\S+)$", dockerfile, re.M).group(1)
    assert "authlib" not in pins(Path(default_image).name)


def test_requirements__sandbox_and_dev__production_pins_plus_the_sandbox() -> None:
    """sandbox.txt (a public demo image) is base.txt plus the sandbox extra; dev.txt and bench.txt (`make run`, the
    tests, the benchmarks) hold all of it, at the same versions."""
    base, sandbox = pins("base.txt"), pins("sandbox.txt")
    assert base.items() <= sandbox.items()
    assert "authlib" in sandbox
    for name in ("dev.txt", "bench.txt"):
        assert sandbox.items() <= pins(name).items(), name


def test_requirements__each_file__names_itself_in_the_command_that_compiles_it() -> None:
    for path in REQUIREMENTS.glob("*.txt"):
        command = path.read_text(encoding="utf-8").splitlines()[1]
        assert f"-o requirements/{path.name} " in command, path.name
        assert ("--extra sandbox" in command) == (path.name != "base.txt"), path.name


def test_settings__sandbox_on_without_authlib__refused_naming_the_requirements() -> None:
    without_authlib = "import sys; sys.modules['authlib'] = None; from kelabooking.wsgi import application"
    result = run_manage("-c", without_authlib, env={**PRODUCTION, "DEBUG": "1", "SUOMIFI_SANDBOX": "1"})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "requirements/sandbox.txt" in result.stderr

    # Without the sandbox the production settings never need it.
    production = run_manage("-c", without_authlib, env=PRODUCTION)
    assert production.returncode == 0, production.stderr
