"""Maps the repository's top-level folders into the one import package ``srarena``.

``harness/`` -> ``srarena.harness``, ``methods/`` -> ``srarena.methods``, and the data-only
folders ``conf/`` -> ``srarena/conf``, ``datasets/`` -> ``srarena/datasets``. Every folder below
them is found here, so adding a package (a method family, a config group) needs no edit.
Everything else (name, dependencies, package data) is declared in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {"harness": "harness", "methods": "methods", "conf": "conf", "datasets": "datasets"}
SKIP = ("__pycache__",)

packages = ["srarena"]
package_dir = {"srarena": "srarena"}
for name, folder in ROOTS.items():
    found = find_namespace_packages(where=folder)
    packages.append(f"srarena.{name}")
    package_dir[f"srarena.{name}"] = folder
    for sub in found:
        if any(part in SKIP or part.startswith(".") for part in sub.split(".")):
            continue
        packages.append(f"srarena.{name}.{sub}")

setup(packages=packages, package_dir=package_dir)
