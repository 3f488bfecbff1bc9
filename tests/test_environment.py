"""The three descriptions of the environment must agree.

pyproject.toml names the dependencies (loose ranges), constraints.txt pins every
package pip installs (the lock file), environment.yml pins the top-level ones
for conda and Binder. conda cannot run here, so environment.yml is checked by
parsing it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"
ENVIRONMENT = ROOT / "environment.yml"

# conda-forge package name -> PyPI distribution name, where they differ.
CONDA_TO_PYPI = {
    "matplotlib-base": "matplotlib",
}
# In environment.yml these may stay unpinned or loosely pinned.
CONDA_UNPINNED = {"python", "pip"}

CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?:(?P<op>==|=)\s*(?P<version>[0-9][0-9A-Za-z.+!\-]*))?$")
PIN_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)==(?P<version>\S+)$")


# --- parsers -------------------------------------------------------------------------


def load_pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def extras_requirements(pyproject: dict) -> list[Requirement]:
    extras = pyproject["project"]["optional-dependencies"]
    return [Requirement(r) for group in ("lab", "test") for r in extras[group]]


def parse_constraints(text: str) -> dict[str, Version]:
    """name -> pinned version; raises ValueError on any line that is not `name==version`."""
    pins: dict[str, Version] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = PIN_LINE.match(line)
        if not m:
            raise ValueError(f"constraints.txt:{lineno}: not an exact pin: {raw!r}")
        name = canonicalize_name(m["name"])
        if name in pins:
            raise ValueError(f"constraints.txt:{lineno}: {name} pinned twice")
        try:
            pins[name] = Version(m["version"])
        except InvalidVersion as e:
            raise ValueError(f"constraints.txt:{lineno}: {e}") from None
    return pins


def parse_environment(data: dict) -> tuple[dict[str, tuple[str | None, str | None]], list[list[str]]]:
    """conda deps as {conda name: (operator, version)} and the list of `pip:` sections."""
    conda: dict[str, tuple[str | None, str | None]] = {}
    pip_sections: list[list[str]] = []
    for dep in data["dependencies"]:
        if isinstance(dep, dict):
            assert list(dep) == ["pip"], f"unexpected mapping in dependencies: {dep!r}"
            pip_sections.append(list(dep["pip"]))
            continue
        m = CONDA_SPEC.match(str(dep).strip())
        if not m:
            raise ValueError(f"environment.yml: cannot read dependency {dep!r}")
        name = m["name"].lower()
        if name in conda:
            raise ValueError(f"environment.yml: {name} listed twice")
        conda[name] = (m["op"], m["version"])
    return conda, pip_sections


def pypi_name(conda_name: str) -> str:
    return canonicalize_name(CONDA_TO_PYPI.get(conda_name, conda_name))


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return load_pyproject()


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    return parse_constraints(CONSTRAINTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def environment() -> dict:
    data = yaml.safe_load(ENVIRONMENT.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and "dependencies" in data
    return data


@pytest.fixture(scope="module")
def conda_deps(environment):
    return parse_environment(environment)[0]


# --- the parsers themselves can reject bad input ---------------------------------------


@pytest.mark.parametrize(
    "text",
    ["pandas>=2\n", "pandas\n", "-e .\n", "pandas==3.1\nPandas==3.2\n", "pandas==not.a.version!\n"],
)
def test_constraints_parser_rejects(text):
    with pytest.raises(ValueError):
        parse_constraints(text)


def test_environment_parser_rejects_ranges():
    with pytest.raises(ValueError):
        parse_environment({"dependencies": ["pandas>=2"]})


# --- pyproject.toml ----------------------------------------------------------------------


def test_engine_has_no_core_dependencies(pyproject):
    # The simulator uses the standard library only; Jupyter and friends are extras.
    assert pyproject["project"]["dependencies"] == []


def test_running_python_satisfies_requires_python(pyproject):
    spec = SpecifierSet(pyproject["project"]["requires-python"])
    assert Version("{}.{}.{}".format(*sys.version_info[:3])) in spec


# --- constraints.txt -----------------------------------------------------------------------


def test_constraints_pin_every_extra_within_its_range(pyproject, pins):
    assert pins, "constraints.txt pins nothing"
    assert canonicalize_name(pyproject["project"]["name"]) not in pins, "the kit itself must not be pinned"
    for req in extras_requirements(pyproject):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (a lab/test extra) is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's range {req.specifier}"
        )


def test_constraints_header_says_how_to_regenerate():
    head = CONSTRAINTS.read_text(encoding="utf-8").splitlines()[:15]
    assert any("make lock" in line for line in head if line.startswith("#"))


# --- environment.yml ----------------------------------------------------------------------


def test_environment_file_name_is_the_one_binder_reads():
    assert ENVIRONMENT.is_file()
    assert not (ROOT / "environment.yaml").exists(), "Binder reads environment.yml; a .yaml beside it confuses"


def test_environment_uses_conda_forge(environment):
    assert environment.get("channels") == ["conda-forge"]


def test_every_extra_is_in_environment(pyproject, conda_deps):
    in_env = {pypi_name(n) for n in conda_deps}
    missing = sorted({r.name for r in extras_requirements(pyproject) if canonicalize_name(r.name) not in in_env})
    assert not missing, f"in pyproject's lab/test extras but not in environment.yml: {missing}"


def test_environment_pins_equal_constraints(conda_deps, pins):
    for conda_name, (op, version) in conda_deps.items():
        if conda_name in CONDA_UNPINNED:
            continue
        assert op == "==" and version, f"environment.yml: {conda_name} must be pinned exactly (==)"
        name = pypi_name(conda_name)
        assert name in pins, f"environment.yml pins {conda_name}, which constraints.txt does not pin"
        assert Version(version) == pins[name], (
            f"environment.yml pins {conda_name}=={version} but constraints.txt has {name}=={pins[name]}"
        )


def test_environment_python_satisfies_requires_python(pyproject, conda_deps):
    assert "python" in conda_deps, "environment.yml must name python"
    op, version = conda_deps["python"]
    assert version, "environment.yml: give python a version (python=3.11)"
    spec = SpecifierSet(pyproject["project"]["requires-python"])
    # conda's `python=3.11` means any 3.11.x: its first release must satisfy requires-python.
    assert Version(version) in spec
    assert Version(version + ".0" * (3 - len(Version(version).release))) in spec


def test_environment_installs_the_kit_with_pip(environment, conda_deps):
    assert "pip" in conda_deps, "a `pip:` section needs pip itself among the conda dependencies"
    pip_sections = parse_environment(environment)[1]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `- pip:` section"
    assert "-e ." in [s.strip() for s in pip_sections[0]], 'environment.yml needs `- pip: ["-e ."]`'


# --- the running environment ------------------------------------------------------------------


def _top_level_names() -> list[str]:
    return sorted({canonicalize_name(r.name) for r in extras_requirements(load_pyproject())})


@pytest.mark.parametrize("name", _top_level_names())
def test_installed_version_is_the_locked_one(name, pins):
    """Drift check: the environment running the tests has exactly the locked versions."""
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{name} is not installed; run `make test` (it installs from constraints.txt)")
    assert Version(installed) == pins[name], (
        f"{name} {installed} is installed but constraints.txt pins {pins[name]}; "
        "reinstall (touch constraints.txt && make test) or regenerate the lock (make lock)"
    )
