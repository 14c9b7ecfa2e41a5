"""Each store's own artifacts folder, and which stored model paths may be used.

A store's files (best models, checkpoints, TensorBoard events) live in its artifacts
folder, `<root>/<db file stem>-<first 8 hex of its store id>/`, where root is
$LSC_ARTIFACTS or `artifacts/` beside the database. The folder's name is made once, when
the store is created, and kept in the store (`store_info`), so two stores in one folder,
or two stores sharing LSC_ARTIFACTS, never share a file, and a store keeps its folder when
its file is renamed.

A store that already had runs when stores got their own folders keeps the root itself
(its stored model paths are relative to it, and moving files on open could mix two
stores' files); it is a *shared-root* store, whose models are used only inside its run
folders `<root>/<run id>/` (the rest of the root may be newer stores' folders). Such a
store's runs move into a store of their own with `export-run` / `import-run`.

A model path read from the store is used only when it resolves (symlinks followed) to a
file inside the store's folder; anything else (`/etc/shadow`, `../../x`, a link leading
out) is refused with one line saying so, and nothing reads it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .runs import RUNNING

# store_info keys
STORE_ID, FOLDER = "store_id", "artifacts_folder"
# What store_info holds as FOLDER for a store that keeps the root itself (see above).
SHARED_ROOT = ""
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # one plain path component
_STEM_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_SHOWN_PATH = 200  # characters of a hostile stored path quoted in a message


class FolderError(ValueError):
    """The store names an artifacts folder that is not a plain folder name (a tampered store)."""


def artifacts_root(db_path: str | os.PathLike) -> Path:
    """$LSC_ARTIFACTS, else artifacts/ beside the database, so a store and its models travel together."""
    env = os.environ.get("LSC_ARTIFACTS")
    return Path(env).resolve() if env else Path(db_path).resolve().parent / "artifacts"


def new_folder_name(db_path: str | os.PathLike, store_id: str) -> str:
    """`<db file stem>-<first 8 hex of the store id>`: readable, and unique per store."""
    stem = _STEM_CHARACTERS.sub("_", Path(db_path).stem).strip("._-")[:40] or "store"
    return f"{stem}-{store_id[:8]}"


@dataclass(frozen=True)
class StoreFolder:
    """A store's artifacts folder (absolute, symlinks resolved) and whether it is a shared root."""

    path: Path
    shared_root: bool

    @classmethod
    def of(cls, db_path: str | os.PathLike, name: str | None) -> "StoreFolder":
        """The folder that store_info's `name` means (None: a store older than store_info; it
        keeps the root, as SHARED_ROOT)."""
        root = artifacts_root(db_path)
        if name is None or name == SHARED_ROOT:
            return cls(root, shared_root=True)
        if not isinstance(name, str) or not _FOLDER_NAME.fullmatch(name) or name in (".", ".."):
            raise FolderError(f"the store names its artifacts folder {_shown(name)}, which is not a plain folder "
                              "name; the store was left as it is")
        return cls((root / name).resolve(), shared_root=False)

    def model_path(self, stored) -> tuple[Path | None, str | None]:
        """(the usable absolute path, None) of a stored model path, or (None, why it is not used).

        A relative path is taken inside this folder; an absolute one must lead into it.
        """
        if stored is None or stored == "":
            return None, None
        if not isinstance(stored, str):
            return None, f"stored model path {_shown(stored)} is not a path; not used"
        plain = self._plain_inside(stored)
        if plain is not None:
            return plain, None
        try:
            resolved = (self.path / stored).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            return None, f"stored model path {_shown(stored)} cannot be resolved ({exc}); not used"
        if self._holds(resolved):
            return resolved, None
        lexical = Path(os.path.normpath(self.path / stored))
        if self._holds(lexical):  # inside by name, outside once links are followed
            return None, (f"stored model path {_shown(stored)} links outside this store's artifacts folder "
                          f"(to {_shown(str(resolved))}); not used")
        return None, f"stored model path {_shown(stored)} is outside this store's artifacts folder; not used"

    def _plain_inside(self, stored: str) -> Path | None:
        """The common case, answered with one lstat per part below the folder instead of a full
        resolve (about 8 us a run instead of 50: pages list hundreds of runs every few seconds):
        `stored` relative, without '.', '..' or empty parts, no part a link, inside by the
        shared-root rule. None means: not that case, let resolve() judge."""
        parts = stored.split("/")
        if stored.startswith("/") or "\0" in stored or any(part in ("", ".", "..") for part in parts):
            return None
        if self.shared_root and not (len(parts) > 1 and parts[0].isdigit()):
            return None
        path = str(self.path)
        for part in parts:
            path = f"{path}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return None
            except FileNotFoundError:  # nothing further down exists, so no link either
                break
            except OSError:  # e.g. a file where a folder should be
                return None
        return self.path.joinpath(*parts)

    def _holds(self, path: Path) -> bool:
        if path == self.path or not path.is_relative_to(self.path):
            return False
        inside = path.relative_to(self.path).parts
        # A shared root also holds newer stores' folders: its own files are in its run folders.
        return not self.shared_root or (len(inside) > 1 and inside[0].isdigit())

    def stored_form(self, path: str | os.PathLike) -> str:
        """How set_model_path records `path`: relative to this folder, so a store and its
        artifacts can be moved together. FolderError when it does not lead inside."""
        resolved, problem = self.model_path(str(path))
        if resolved is None:
            raise FolderError(problem.replace("stored model path", "model path", 1).replace("; not used",
                                                                                             "; not recorded"))
        return resolved.relative_to(self.path).as_posix()


def write_atomically(path: Path, write: Callable[[Path], None],
                     publish: Callable[[Callable[[], None]], None] | None = None) -> None:
    """Write the file `path` so that readers see the old one or the new one, never half of one:
    `write(partial)` writes a partial file beside it (its name ends like `path`'s), which is then
    renamed onto `path`; `publish(rename)`, when given, makes the rename (e.g. inside a store
    transaction that checks the run is still this process's). On any failure the partial file
    is removed (a full disk must not keep megabytes of it) and the error propagates."""
    partial = path.with_name(f".partial-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        rename = functools.partial(os.replace, partial, path)
        if publish is None:
            rename()
        else:
            publish(rename)
    except BaseException:
        with contextlib.suppress(OSError):  # a file system turned read-only refuses even this, and holds none
            partial.unlink(missing_ok=True)
        raise


def read_without_links(path: Path) -> bytes:
    """The bytes of a usable model path (absolute, resolved when its run was read), opened one
    part at a time from / without following any link: a part swapped for a link after the run
    was read (to serve another file through the download) is refused, not followed.
    OSError, one line, when it cannot be read that way."""
    parts = Path(path).parts
    folder = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[1:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        file = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    except OSError as exc:  # ELOOP or ENOTDIR: a link where a folder or the file was
        raise OSError(f"the model file {path} cannot be read without following a link ({exc.strerror}); "
                      "not read") from None
    finally:
        os.close(folder)
    with os.fdopen(file, "rb") as opened:
        return opened.read()


def _shown(value) -> str:
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= _SHOWN_PATH else text[:_SHOWN_PATH] + "..."


def describe_model(run) -> str:
    """One line on the model that a run's pages and commands use: which epoch it is and how good,
    or why there is none ('best model: epoch 7 of 20, test acc 0.642')."""
    if run.model_problem:
        return run.model_problem
    if run.model_path is None:
        return "no saved model" + (f": {run.error}" if run.error else " yet")
    split = "hold-out" if run.validation == "holdout" else "test"
    best, saved = run.best_epoch, run.model_epoch
    of = f" of {run.epochs_planned}" if run.epochs_planned else ""
    accuracy = f", {split} acc {run.best_val_accuracy:.3f}" if run.best_val_accuracy is not None else ""
    if best is None:
        return f"saved model: epoch {saved}{of}" if saved else "saved model: its epoch is not recorded"
    if saved is None:
        return (f"saved model: its epoch is not recorded (saved by an older version); the store's best is "
                f"epoch {best}{of}{accuracy}")
    if saved == best:
        return f"best model: epoch {saved}{of}{accuracy}"
    why = run.error or ("its model is not saved yet" if run.status == RUNNING else "its model was not saved")
    return f"saved model is epoch {saved}; the store's best is epoch {best}{of}{accuracy} ({why})"


def model_out_of_step(run) -> bool:
    """Whether a run's model needs a word: its stored path was refused, or the saved model is
    not the store's best epoch."""
    saved, best = run.model_epoch, run.best_epoch
    return bool(run.model_problem) or (run.model_path is not None and None not in (saved, best) and saved != best)


def model_column(run) -> str:
    """The `runs` table's model cell: the saved model's epoch; '-' none, '?' not recorded, '!' refused."""
    if run.model_problem:
        return "!"
    if run.model_path is None:
        return "-"
    return str(run.model_epoch) if run.model_epoch else "?"
