"""Packages and data files, including the one thing pyproject.toml cannot say: ship a
directory under another name.

Client profiles are data users read and extend, so they stay at the top of the
repository in ``profiles/``. An installed tool has no repository, so the build maps that
directory into the package as ``prober/_profiles`` (wheel and sdist alike), where
``prober.profiles.locations`` finds it through importlib.resources. An editable install
or a checkout on PYTHONPATH has no ``prober/_profiles`` and reads ``profiles/`` in place.

Data directories are listed as (namespace) packages rather than left to discovery, so
setuptools ships them on purpose instead of warning that it might stop doing so.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
PROFILES_DIR = "profiles"
PROFILES_PACKAGE = "prober._profiles"
# where older versions of `profiles from-pcap` wrote by default (git ignores it): a
# developer's local imports, not part of the distribution
LOCAL_ONLY = ("imported",)

DATA = {
    "prober.data": ["*.json", "*.md"],
    "prober.data.policies": ["*.json"],
    "prober.data.examples": ["*.yaml"],
    "prober.data.mozilla_guidelines": ["*"],
}
PROFILE_FILES = ["*.yaml", "*.yml", "*.md"]
# each capability's HTML templates (prober/<capability>/templates/)
TEMPLATE_FILES = ["*.html.j2"]


def profile_packages() -> list[str]:
    # a wheel built without profiles installs, starts, and knows no client: refuse it
    if not any((HERE / PROFILES_DIR).rglob("*.yaml")):
        raise SystemExit(f"setup.py: {HERE / PROFILES_DIR} holds no profile file; the "
                         "package would ship without its client profiles")
    subdirs = [p for p in find_namespace_packages(where=str(HERE / PROFILES_DIR))
               if p.split(".")[0] not in LOCAL_ONLY]
    return [PROFILES_PACKAGE, *(f"{PROFILES_PACKAGE}.{p}" for p in subdirs)]


profiles = profile_packages()
code = find_namespace_packages(include=["prober", "prober.*"])
templates = {p: TEMPLATE_FILES for p in code if p.endswith(".templates")}
setup(
    packages=[*code, *profiles],
    # subpackages of prober._profiles follow: prober._profiles.clients -> profiles/clients
    package_dir={PROFILES_PACKAGE: PROFILES_DIR},
    package_data={**DATA, **templates, **{p: PROFILE_FILES for p in profiles}},
)
