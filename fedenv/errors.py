"""Exceptions raised by fedenv; all subclass :class:`FedenvError`, so callers can catch them all."""

from __future__ import annotations

from pathlib import Path


class FedenvError(Exception):
    """Base class of every error fedenv raises on bad input or bad state."""


class ConfigError(FedenvError, ValueError):
    """A configuration value is invalid. The message reads ``source: field: problem``."""

    def __init__(self, field: str, problem: str, source: str | Path | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = None if source is None else str(source)
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{field}: {problem}")

    def __reduce__(self):  # pickles across process pools (the default passes only the message)
        return type(self), (self.field, self.problem, self.source)


class DataFormatError(FedenvError, ValueError):
    """A data file (or in-memory dialogue) is malformed; names the file, line and problem."""

    def __init__(self, file: str | Path, line: int | None, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.problem = problem
        where = self.file if line is None else f"{self.file}:{line}"
        super().__init__(f"{where}: {problem}")


class UnknownOrganizationError(FedenvError, KeyError):
    """An organization name that the federation does not know."""

    def __init__(self, org: str, known: tuple[str, ...] | list[str] = ()) -> None:
        self.org = org
        self.known = tuple(known)
        hint = f" (known: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"unknown organization {org!r}{hint}")

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class NoParticipantsError(FedenvError, ValueError):
    """An operation needs at least one participant (or update) and got none."""


class InvalidUpdateError(FedenvError, ValueError):
    """A client update cannot be used: NaN/inf values, missing keys, or shape/dtype mismatch."""


class FolderBusyError(FedenvError):
    """A folder that another writer holds (see :mod:`fedenv.folder_lock`); ``holder`` is its
    record (``pid``, ``host``, ``command``, ``since``), or None when it could not be read."""

    def __init__(self, folder: str | Path, holder: dict | None, message: str) -> None:
        self.folder = str(folder)
        self.holder = holder
        super().__init__(message)


class StorageError(FedenvError, OSError):
    """A write that failed for want of space or on an I/O error (see :mod:`fedenv.disk`): the
    message says what was written, where, and how much space is left; ``errno`` and
    ``filename`` are the system's."""

    def __init__(self, code: int, message: str, filename: str) -> None:
        OSError.__init__(self, code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnlearningError(FedenvError, ValueError):
    """An unlearning request that cannot be carried out now (an organization already forgotten,
    one that never took part, adapters not stored); nothing was changed."""
