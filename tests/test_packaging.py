"""artifacts/ ships inside the wheel: every data folder is a listed package."""

from __future__ import annotations

import tomllib

from .conftest import REPO


def test_every_artifacts_folder_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    assert config["package-dir"]["irkit._artifacts"] == "artifacts"
    root = REPO / "artifacts"
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        name = ".".join(["irkit._artifacts", *folder.relative_to(root).parts])
        assert name in packages, f"{folder} is not shipped: add {name} to pyproject.toml"
    listed = {p for p in packages if not p.startswith("irkit._artifacts")}
    code = {".".join(p.relative_to(REPO).parts[:-1]) for p in (REPO / "irkit").rglob("__init__.py")}
    assert code == listed
