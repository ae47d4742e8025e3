"""Loading a scenario file: TOML in, one validated :class:`~fedenv.scenario.models.Scenario` out.

``load_scenario("default")`` reads ``scenarios/default.toml`` (a bare name) or any TOML path,
resolves each organization's ``data_path`` next to the file, validates it, and applies the
overrides (:mod:`fedenv.scenario.overrides`), which are validated like the file's keys.

A file may start from another: ``extends = "default"`` (a bundled name, or a TOML path relative to
the file) loads that scenario's keys first; the file's tables then update them key by key, its
``[[organizations]]`` update the base's organization of the same ``name`` (or add one), and any
other list replaces the base's. ``name`` is the file's own (its stem unless it sets one).

Every problem is a :class:`~fedenv.errors.ConfigError` naming the file and the key, e.g.
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
    path = _scenario_path(path_or_name)
    source = _display(path)
    raw = _read(path, source, seen=())
    scenario = scenario_from_dict(raw, source=source)
    return scenario.with_overrides(**overrides) if overrides else scenario


def _scenario_path(path_or_name: str | Path, relative_to: Path | None = None) -> Path:
    """A bundled scenario's file for a bare name; a path as given (``extends``: relative to the
    extending file's folder)."""
    path = Path(path_or_name)
    if path.suffix != ".toml" and (relative_to is not None or not path.exists()):
        return SCENARIO_DIR / f"{path_or_name}.toml"
    if relative_to is not None and not path.is_absolute():
        return relative_to / path
    return path


def _read(path: Path, source: str, *, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The plain data of ``path``, with its ``extends`` chain merged in."""
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
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError("extends", f"must name a scenario, got {base!r}", source)
    base_path = _scenario_path(base, relative_to=path.parent).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError("extends", f"{base!r} extends this file again (a cycle)", source)
    if not base_path.is_file():
        raise ConfigError("extends", f"no such scenario: {base!r} ({base_path})", source)
    return _merged(_read(base_path, source, seen=(*seen, path.resolve())), raw, source)


def _merged(base: dict[str, Any], top: dict[str, Any], source: str) -> dict[str, Any]:
    """``top``'s keys over ``base``'s (see the module docstring)."""
    merged = dict(base)
    for key, value in top.items():
        if key == "organizations" and isinstance(value, list):
            merged[key] = _merged_organizations(base.get(key) or [], value, source)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merged(base[key], value, source)
        else:
            merged[key] = value
    return merged


def _merged_organizations(base: list[Any], top: list[Any], source: str) -> list[Any]:
    organizations = [dict(o) if isinstance(o, dict) else o for o in base]
    names = [o.get("name") if isinstance(o, dict) else None for o in organizations]
    for i, org in enumerate(top):
        if not isinstance(org, dict) or not isinstance(org.get("name"), str):
            raise ConfigError(
                f"organizations[{i}]", "an extending file names each organization it sets", source
            )
        if org["name"] in names:
            organizations[names.index(org["name"])].update(org)
        else:
            organizations.append(org)
            names.append(org["name"])
    return organizations


def scenario_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Validate plain data (as parsed from TOML or JSON) into a :class:`Scenario`."""
    return Scenario.from_dict(raw, source=source)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
