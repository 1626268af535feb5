"""The public API is small, documented and typed: what users may rely on, and nothing else."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator

import pytest

import azfed_helper
import azfed_helper.aio
import azfed_helper.emulator

from .conftest import REPO

PUBLIC_MODULES = (azfed_helper, azfed_helper.aio, azfed_helper.emulator)


def _public_callables() -> Iterator[tuple[str, Callable[..., object]]]:
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value):
                yield f"{module.__name__}.{name}", value
                if "__init__" not in vars(value) and inspect.isfunction(value.__init__):
                    yield f"{module.__name__}.{name}.__init__ (inherited)", value.__init__
                for attribute, member in vars(value).items():
                    if callable(member) and (
                        not attribute.startswith("_")
                        or attribute
                        in ("__init__", "__enter__", "__exit__", "__aenter__", "__aexit__")
                    ):
                        yield f"{module.__name__}.{name}.{attribute}", member
            elif callable(value):
                yield f"{module.__name__}.{name}", value


@pytest.mark.parametrize(("name", "value"), list(_public_callables()))
def test_type_hints_resolve_on_every_public_callable(
    name: str, value: Callable[..., object]
) -> None:
    typing.get_type_hints(value)


def test_every_public_name_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    api = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            if name != "__version__":
                assert name in api, f"{module.__name__}.{name} is not in README's Python API"


def test_nothing_else_is_exported_at_the_top() -> None:
    with pytest.raises(AttributeError):
        azfed_helper.Settings  # noqa: B018 - internal since the API was decided
