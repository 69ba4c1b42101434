"""The Suomi.fi sandbox (partners/sandbox) is a development-only app kept apart from the product: its dependencies are
not in the production requirements, and a sandbox switched on without them is refused plainly."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.kelabooking.test_settings import PRODUCTION, run_manage

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.M)


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
