"""Demo data: each app registers the loader of its own in its `AppConfig.ready()`, and `manage.py load_demo` runs
them in the order they were registered, which is INSTALLED_APPS' order: an app after the apps it builds on
(tests/kelabooking/test_layering.py holds the apps to that order)."""

from __future__ import annotations

from collections.abc import Callable

# Loads an app's demo data, idempotently; may return a line to tell whoever loaded it (the demo admin's address).
DemoLoader = Callable[[], str | None]

_loaders: list[DemoLoader] = []


def demo_loader_register(load: DemoLoader) -> None:
    if load not in _loaders:
        _loaders.append(load)


def demo_loaders() -> list[DemoLoader]:
    return list(_loaders)
