"""What the Docker image installs (`pip install --no-index` of the wheels its builder
stage makes): from requirements.lock, every runtime dependency of pyproject.toml, at a
version pyproject allows, with everything those need on the image's Python and nothing
else; and the project's own wheel with all of its packages."""

from __future__ import annotations

import re
import tomllib
import warnings
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _image_python() -> str:
    """The Python of the Dockerfile's stages, e.g. "3.11" from python:3.11-slim."""
    versions = set(re.findall(r"^FROM python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text(), re.M))
    assert len(versions) == 1, f"every stage on one Python: {versions}"
    return versions.pop()


IMAGE_PYTHON = _image_python()
# environment markers as pip evaluates them inside the image (Debian slim, CPython); the
# patch release (python_full_version) is left to this interpreter's: the image's tag
# follows the newest one of its minor version
IMAGE_MARKERS = {
    "python_version": IMAGE_PYTHON,
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _locked() -> dict[NormalizedName, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pin = Requirement(line)
        (spec,) = pin.specifier
        assert spec.operator == "==", f"not pinned: {line}"
        pins[canonicalize_name(pin.name)] = Version(spec.version)
    return pins


def _needed_in_image(requirement: Requirement, extra: str = "") -> bool:
    marker = requirement.marker
    return marker is None or marker.evaluate({**IMAGE_MARKERS, "extra": extra})


def _runtime_closure() -> set[NormalizedName]:
    """The project's dependencies and theirs, extras included, from the installed
    packages' metadata, with markers evaluated for the image."""
    pending = [Requirement(dependency) for dependency in PROJECT["dependencies"]]
    seen: set[NormalizedName] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            declared = [Requirement(line) for line in requires(requirement.name) or []]
        except PackageNotFoundError:
            raise AssertionError(f"{requirement.name} is not installed: make install") from None
        for extra in ("", *requirement.extras):
            pending += [r for r in declared if _needed_in_image(r, extra)]
    return seen


def test_the_image_python_is_one_the_project_supports() -> None:
    assert Version(f"{IMAGE_PYTHON}.0") in SpecifierSet(PROJECT["requires-python"])


def test_every_runtime_dependency_is_pinned_at_a_version_pyproject_allows() -> None:
    locked = _locked()
    for dependency in PROJECT["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is missing from requirements.lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, pyproject wants {requirement}: "
            "make lock"
        )


def test_the_lock_is_the_whole_runtime_closure_and_nothing_else() -> None:
    locked, needed = set(_locked()), _runtime_closure()
    assert not needed - locked, f"needed in the image but not locked: {needed - locked}"
    assert not locked - needed, f"locked but needed by nothing: {locked - needed}"


def test_the_project_wheel_has_every_package_of_the_source_tree() -> None:
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    with warnings.catch_warnings():
        # older setuptools call [tool.setuptools] beta
        warnings.simplefilter("ignore")
        config = pyprojecttoml.read_configuration(ROOT / "pyproject.toml", expand=True)
    shipped = set(config["tool"]["setuptools"]["packages"])
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("bot", "handlers")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert shipped == in_tree
