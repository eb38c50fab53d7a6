"""Every third-party module the project imports comes from a distribution that a requirements file names.

A package that happens to be installed (a system Python, a package pulled in by another one) hides a
missing requirement until a user's fresh machine fails; this test fails first. It reads the imports
of every project ``.py`` file with ``ast`` (top level, inside functions, in tests and benchmarks alike)
and maps each top-level module to its distributions with ``importlib.metadata.packages_distributions``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {"runs", "build", "dist", "venv", "out"}  # run outputs and environments, not project code


def normalise(name: str) -> str:
    """PEP 503 name: ``PyYAML`` -> ``pyyaml``, ``opencv_python.headless`` -> ``opencv-python-headless``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(root: Path) -> set[str]:
    """The distributions named in ``root/requirements*.txt`` (``-r`` includes are files of the same glob)."""
    names = set()
    for path in root.glob("requirements*.txt"):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                names.add(normalise(re.match(r"[A-Za-z0-9_.\-]+", line).group()))
    return names


def project_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if not any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts):
            yield path


def imported_top_modules(path: Path) -> set[str]:
    """Top-level names of absolute imports in ``path`` (relative imports are the project's own)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def local_modules(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir()} | {p.stem for p in root.glob("*.py")}


def undeclared_imports(root: Path) -> dict[str, list[str]]:
    """``{module (distributions): [files]}`` for each imported third-party module that no requirement covers."""
    declared = declared_distributions(root)
    owners = importlib.metadata.packages_distributions()
    ours = local_modules(root) | set(sys.stdlib_module_names) | {"__future__"}
    missing: dict[str, list[str]] = {}
    for path in project_files(root):
        for module in sorted(imported_top_modules(path) - ours):
            distributions = {normalise(d) for d in owners.get(module, [])}
            if not distributions & declared:
                where = ", ".join(sorted(distributions)) or "not installed here"
                missing.setdefault(f"{module} ({where})", []).append(str(path.relative_to(root)))
    return missing


def test_every_imported_package_is_in_a_requirements_file():
    missing = undeclared_imports(ROOT)
    assert not missing, "imported but named in no requirements*.txt: " + "; ".join(
        f"{module} by {', '.join(files[:3])}" for module, files in sorted(missing.items())
    )


def test_an_undeclared_import_is_caught(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy>=1.26  # a comment\n-r requirements-extras.txt\n")
    (tmp_path / "requirements-extras.txt").write_text("ray[default]>=2.9\n")
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("import numpy, os\nfrom ray import util\n")
    (tmp_path / "tool.py").write_text("import mypackage\nfrom mypackage import x\nfrom . import y\n")
    assert undeclared_imports(tmp_path) == {}
    (tmp_path / "mypackage" / "late.py").write_text("def f():\n    import yaml\n    import no_such_module_xyz\n")
    assert undeclared_imports(tmp_path) == {
        "no_such_module_xyz (not installed here)": ["mypackage/late.py"],
        "yaml (pyyaml)": ["mypackage/late.py"],
    }


def test_requirement_names_are_read_like_pip_reads_them(tmp_path):
    (tmp_path / "requirements.txt").write_text("PyYAML>=6.0\nray[default]>=2.9\nopencv_python.headless\n\n# only\n")
    assert declared_distributions(tmp_path) == {"pyyaml", "ray", "opencv-python-headless"}
