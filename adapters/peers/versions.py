"""Installed versions of the peer libraries, and the error for a missing one."""

from __future__ import annotations

import importlib.metadata

from spmm.errors import SpmmInputError

PEER_PACKAGES = ("lxt", "inseq", "zennit", "captum")


def peer_version(package: str) -> str:
    """The installed version of ``package``; :class:`SpmmInputError` naming the extra when it is missing."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        raise SpmmInputError(f"the {package} explainers need {package}: pip install 'spmm[peers]'") from None


def installed_versions() -> dict[str, str | None]:
    """package -> version (None when not installed), for reports."""
    versions: dict[str, str | None] = {}
    for package in PEER_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions
