"""Print pyproject's runtime floors as pins (``torch>=2.11.0`` ->
``torch==2.11.0``): the constraints `make test-floor` installs, so the
floors we claim are the versions a test runs. Fails on a dependency
without a ``>=`` floor."""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

deps = tomllib.loads((ROOT / "pyproject.toml").read_text())[
    "project"]["dependencies"]
for dep in deps:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][^,;\s]*)", dep.strip())
    if not m:
        sys.exit(f"floor_pins: {dep!r} in pyproject.toml has no single "
                 f"'>=' floor to test")
    print(f"{m[1]}=={m[2]}")
