"""The installed names: one `llmesh` package, never `services` or `gateway` at the top level.

The folders stay at the root (services/, gateway/, gen/llmesh/v1) and pyproject.toml maps
them into `llmesh`. The dev tree has the root on `sys.path`, so an import of the old names
would still work in the tests and fail only once installed: both are checked here.
"""

from __future__ import annotations

import ast
import itertools
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"services": "llmesh/services", "gateway": "llmesh/gateway", "gen/llmesh": "llmesh"}
DATA = ("*.yaml", "*.html", "*.js", "*.css", "py.typed")
OLD = ("services", "gateway")
BUILD = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"


@dataclass(frozen=True)
class Wheel:
    names: list[str]
    """Every file in the wheel."""
    entry_points: str
    """The text of its entry_points.txt."""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The wheel built from a copy of the sources (offline, in a child process)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("services", "gateway", "gen"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    out = src / "dist"
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1]) as whl:
        names = whl.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        return Wheel(names, whl.read(entry_points).decode())


def _shipped(pattern: str) -> Iterator[tuple[Path, str]]:
    """Files of the source folders matching `pattern`, with their path inside the wheel."""
    for folder, installed in MAPPED.items():
        for path in sorted((ROOT / folder).rglob(pattern)):
            if "__pycache__" not in path.parts:
                yield path, f"{installed}/{path.relative_to(ROOT / folder).as_posix()}"


def test_llmesh_is_the_only_top_level_name(wheel: Wheel) -> None:
    top = {name.split("/")[0] for name in wheel.names if ".dist-info/" not in name}
    assert top == {"llmesh"}


def test_every_module_and_data_file_is_installed_under_llmesh(wheel: Wheel) -> None:
    files = set(wheel.names)
    expected = [inside for pattern in ("*.py", *DATA) for _, inside in _shipped(pattern)]
    missing = [name for name in expected if name not in files]
    hint = "not in the wheel (pyproject.toml [tool.setuptools] packages?): "
    assert not missing, hint + ", ".join(missing)


def test_the_command_runs_the_installed_cli(wheel: Wheel) -> None:
    assert "llmesh = llmesh.services.cli:main" in wheel.entry_points.splitlines()


def _old_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Imports of the old top-level names, and module strings after a ``-m`` argument."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OLD:
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] in OLD:
                yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.List | ast.Tuple | ast.Call):
            items = node.args if isinstance(node, ast.Call) else node.elts
            for flag, module in itertools.pairwise(items):
                if (
                    isinstance(flag, ast.Constant)
                    and flag.value == "-m"
                    and isinstance(module, ast.Constant)
                    and str(module.value).split(".")[0] in OLD
                ):
                    yield module.lineno, f"-m {module.value}"


def test_no_code_uses_the_old_top_level_names() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for folder in ("services", "gateway", "bench", "tests", "contracts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, what in _old_names(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "use llmesh.services / llmesh.gateway:\n" + "\n".join(found)
