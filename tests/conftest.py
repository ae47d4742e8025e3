"""Shared fixtures: the "test"-preset base model, built once per session into a temporary cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything
# One engine thread (as if one env process ran per CPU): on a machine shared with other jobs, two
# OpenMP threads wait on each other whenever a neighbour holds a core, and the suite slowed 4x.
os.environ.setdefault("FEDENV_PROCESSES", str(len(os.sched_getaffinity(0))))


@pytest.fixture(scope="session")
def test_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """An empty fedenv cache folder for this test session (``load_base(..., cache_dir=...)``)."""
    return tmp_path_factory.mktemp("fedenv-cache")


@pytest.fixture(scope="session")
def test_base(test_cache_dir):
    """``(model, tokenizer)`` of the "test" preset (CPU, float32, eval mode), built in seconds.

    Shared by the whole session: do not train or modify it in place (``copy.deepcopy`` it first).
    """
    from fedenv.data.model import load_base

    return load_base(
        "test", device="cpu", dtype="float32", cache_dir=test_cache_dir, progress=False
    )


@pytest.fixture(scope="module")
def shared_cache(test_cache_dir, test_base) -> Iterator[None]:
    """Build envs on the session's "test" base model instead of building it again: points
    ``FEDENV_CACHE`` at the session's cache for the module (``usefixtures("shared_cache")``)."""
    old = os.environ.get("FEDENV_CACHE")
    os.environ["FEDENV_CACHE"] = str(test_cache_dir)
    yield
    if old is None:
        os.environ.pop("FEDENV_CACHE")
    else:
        os.environ["FEDENV_CACHE"] = old


@pytest.fixture
def files_written(tmp_path, monkeypatch):
    """Run from an empty working directory ``<tmp_path>/work`` with temporary files redirected
    into ``<tmp_path>/tmp``; call the fixture's value to list, relative to ``tmp_path``, every
    file that is left in either (the test checks that a command wrote only where it should)."""
    import tempfile

    work, temporary = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temporary.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    return lambda: sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                          if p.is_file())
