"""Loading a scenario file: TOML in, one validated :class:`~fedenv.scenario.models.Scenario` out.

``load_scenario("default")`` reads ``scenarios/default.toml`` (a bare name) or any TOML path,
resolves each organization's ``data_path`` next to the file, validates it, and applies the
overrides (:mod:`fedenv.scenario.overrides`), which are validated like the file's keys.  Every problem is a
:class:`~fedenv.errors.ConfigError` naming the file and the key, e.g.
``scenarios/x.toml: organizations[2].unit_cost: must be >= 0, got -1``.  A file is at most
1 MiB; its ``name`` (default: the file's name, with other characters as ``-``) names folders, so
it is 1-128 letters, digits, ``_``, ``.``, ``+``, ``=``, ``,``, ``[``, ``]`` or ``-`` (a sweep names
its cells ``<scenario>[key=value,...]``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedenv.errors import ConfigError
from fedenv.scenario.models import Scenario

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

SCENARIO_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"
MAX_SCENARIO_BYTES = 1 << 20  # a scenario is a page of TOML; more is a mistake or an attack


def load_scenario(path_or_name: str | Path, **overrides: Any) -> Scenario:
    """Load ``scenarios/<name>.toml`` (a bare name) or a TOML file, apply overrides, validate."""
    path = Path(path_or_name)
    if path.suffix != ".toml" and not path.exists():
        path = SCENARIO_DIR / f"{path_or_name}.toml"
    source = _display(path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        raise ConfigError("scenario", f"no such file (bundled scenarios: {known})", source)
    size = path.stat().st_size
    if size > MAX_SCENARIO_BYTES:
        raise ConfigError(
            "scenario",
            f"the file has {size} bytes; a scenario is at most {MAX_SCENARIO_BYTES}",
            source,
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("toml", str(exc), source) from None
    raw.setdefault(
        "name", re.sub(r"[^A-Za-z0-9_.+-]+", "-", path.stem).strip("-._+")[:64] or "scenario"
    )
    for i, org in enumerate(raw.get("organizations") or ()):
        if isinstance(org, dict) and isinstance(org.get("data_path"), str) and org["data_path"]:
            data_path = (path.parent / org["data_path"]).resolve()
            if not data_path.is_file():
                raise ConfigError(
                    f"organizations[{i}].data_path", f"no such file: {data_path}", source
                )
            org["data_path"] = str(data_path)
    scenario = scenario_from_dict(raw, source=source)
    return scenario.with_overrides(**overrides) if overrides else scenario


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Validate plain data (as parsed from TOML or JSON) into a :class:`Scenario`."""
    return Scenario.from_dict(raw, source=source)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
