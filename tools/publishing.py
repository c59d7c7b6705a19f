"""The publishing setting (publish.toml): where the series lives."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "publish.toml"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
#: Links that ``make publish`` rewrites. Hashes of translated text leave
#: them out (tools/zh_sync.py, tools/classroom.py), so that publishing
#: the series elsewhere does not make a translation look stale.
PUBLISHED_LINK = re.compile(
    r"https://(colab\.research\.google\.com/github|github\.com)/\S+?"
    r"(?=[)\s\"'>]|$)")


def without_published_links(text: str) -> str:
    """``text`` with every link ``make publish`` rewrites replaced by one
    placeholder."""
    return PUBLISHED_LINK.sub("<published-link>", text)


#: The settings of publish.toml's ``[publish]`` table.
KEYS = ("repo", "branch", "version", "tag")
#: A release version as PyPI takes it (PEP 440's public versions).
_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def settings(path: Path = FILE) -> dict[str, str]:
    """``{"repo": "owner/name", "branch": ..., "version": "0.3.0",
    "tag": ...}`` from ``publish.toml``; a clear ValueError names a
    missing or bad value."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    section = data.get("publish", {})
    out = {}
    for key in KEYS:
        value = section.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: [publish] {key} must be a non-empty "
                             f"string, got {value!r}")
        out[key] = value.strip()
    if not _REPO.match(out["repo"]):
        raise ValueError(f"{path}: [publish] repo must be 'owner/name', got "
                         f"{out['repo']!r}")
    if not _VERSION.match(out["version"]):
        raise ValueError(f"{path}: [publish] version must be a release "
                         f"version such as 0.3.0 (PEP 440), got "
                         f"{out['version']!r}")
    return out


def pip_requirement(s: dict[str, str]) -> str:
    """What every install cell installs: the release on PyPI."""
    return f"d2l-densenet=={s['version']}"


def git_requirement(s: dict[str, str]) -> str:
    """The same release from its git tag (before it is on PyPI)."""
    return f"git+https://github.com/{s['repo']}@{s['tag']}"
