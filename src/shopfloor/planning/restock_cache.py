"""What the restock planner fits and replays, kept between plans (:class:`RestockModelCache`).

A plan with the default engine (``forecast_model = "gbm"``) fits a LightGBM model on the order history and then
replays that history through the engine, reading the model every day; at 30,490 SKUs that is minutes, and every
``GET /v1/plans/restock`` and ``restock plan`` paid it. The history runs through yesterday, so all plans of one
day read the same history. Two things are kept, each keyed on exactly what it was computed from:

* **the fitted global model**, keyed on the SKUs it was fitted on, the window's length, the forecast horizon
  (lead time + review) and the model's own knobs, and stamped with a digest of every day's demand it saw. A later
  plan reuses it while its history ends fewer than ``refit_days`` days after the fit's last day and every day the
  two windows share still holds the same demand; new days past that cadence, a changed past day (a late order, a
  cancellation), another SKU set or another horizon fit again. The agent, whose figures are in
  ``docs/benchmarks/restock.md``, fits once on its history and never refits; a plan's model is at most
  ``refit_days - 1`` days older than its history.
* **each policy group's replayed levels** (daily means, negative-binomial sizes, quantile level, reorder points and
  order-up-to levels), keyed on the whole history's digest, the group's policy, the engine's knobs and the model in
  force: a second plan on the same history replays nothing.

Thread-safe (one lock over the tables; one computation per key at a time, callers of the same key wait for it and
share the result) and bounded: at most ``max_models`` models and ``max_level_bytes`` of level arrays, least
recently used first out. With a ``directory`` both are also written there (the model as LightGBM's model text in
JSON, the levels as ``.npz``; no pickle), at most ``max_files`` of each kind, oldest first out, so that plans made
by separate processes (``restock plan``) share them too.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, TypeVar

import numpy as np

V = TypeVar("V")


@dataclass(frozen=True)
class HistoryStamp:
    """What a (SKUs x days) history block holds: a digest of its SKU keys and one digest per day's column."""

    keys: str
    first_day: date
    days: tuple[str, ...]

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=len(self.days) - 1)

    def day(self, d: date) -> str | None:
        i = (d - self.first_day).days
        return self.days[i] if 0 <= i < len(self.days) else None

    @property
    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(self.keys.encode())
        h.update(self.first_day.isoformat().encode())
        for d in self.days:
            h.update(d.encode())
        return h.hexdigest()


def stamp_history(keys: Iterable[Any], history: np.ndarray, first_day: date) -> HistoryStamp:
    """The :class:`HistoryStamp` of ``history`` (rows in ``keys`` order, first column ``first_day``)."""
    k = hashlib.blake2b(digest_size=16)
    for key in keys:
        k.update(repr(key).encode())
        k.update(b"\x00")
    cols = np.ascontiguousarray(np.asarray(history, dtype=float).T)
    return HistoryStamp(k.hexdigest(), first_day,
                        tuple(hashlib.blake2b(c.tobytes(), digest_size=16).hexdigest() for c in cols))


@dataclass
class _Fit:
    stamp: HistoryStamp
    model: Any
    token: str


def _digest(key: Hashable) -> str:
    return hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()


def _write_atomic(path: Path, write: Callable[[Any], None], max_files: int) -> None:
    """Write through a temporary file renamed into place, then keep the folder's newest ``max_files`` files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    files = sorted((f for f in path.parent.iterdir() if not f.name.startswith(".tmp-")),
                   key=lambda f: f.stat().st_mtime)
    for old in files[:max(len(files) - max_files, 0)]:
        old.unlink(missing_ok=True)


class RestockModelCache:
    """Fitted global models and replayed group levels for :class:`~shopfloor.planning.restock_service.RestockPlanner`
    (see the module docstring). ``refit_days`` >= 1: a model fitted on a history ending on day D serves histories
    ending on D .. D + refit_days - 1 whose shared days are unchanged; 1 reuses it only for the same history."""

    def __init__(self, *, refit_days: int = 7, max_models: int = 8, max_level_bytes: int = 256 << 20,
                 directory: str | Path | None = None, max_files: int = 64) -> None:
        if isinstance(refit_days, bool) or not isinstance(refit_days, int) or refit_days < 1:
            raise ValueError(f"refit_days must be an integer >= 1, got {refit_days!r}")
        if max_models < 1 or max_level_bytes < 0:
            raise ValueError("max_models must be >= 1 and max_level_bytes >= 0")
        self.refit_days = refit_days
        self.max_models = max_models
        self.max_level_bytes = max_level_bytes
        self._lock = threading.Lock()
        self._gates: dict[Hashable, threading.Lock] = {}
        self._models: OrderedDict[Hashable, _Fit] = OrderedDict()
        self._levels: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._level_bytes = 0
        self.directory = Path(directory) if directory is not None else None
        self.max_files = max_files
        self.fits = self.model_hits = self.level_hits = self.level_misses = self.disk_hits = 0

    # --- single flight ---------------------------------------------------------------------------------------
    def _once(self, key: Hashable, lookup: Callable[[object], Any], compute: Callable[[], V],
              store: Callable[[V], Any]):
        """``lookup(miss)`` under the lock (``miss`` when absent), else ``compute()`` once per key, its value kept by
        ``store`` (concurrent callers of the key wait and look again)."""
        miss = object()
        with self._lock:
            hit = lookup(miss)
            if hit is not miss:
                return hit
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = lookup(miss)
                if hit is not miss:
                    return hit
            try:
                value = compute()
                with self._lock:
                    return store(value)
            finally:
                with self._lock:
                    if self._gates.get(key) is gate:
                        del self._gates[key]

    # --- models ----------------------------------------------------------------------------------------------
    def _serves(self, fit: _Fit, stamp: HistoryStamp) -> bool:
        old = fit.stamp
        age = (stamp.last_day - old.last_day).days
        if old.keys != stamp.keys or len(old.days) != len(stamp.days) or not 0 <= age < self.refit_days:
            return False
        start = max(old.first_day, stamp.first_day)
        return all(old.day(start + timedelta(days=i)) == stamp.day(start + timedelta(days=i))
                   for i in range((old.last_day - start).days + 1))

    def model(self, key: Hashable, stamp: HistoryStamp, fit: Callable[[], Any]) -> tuple[Any, str]:
        """The model fitted under ``key`` on a history that still serves ``stamp``, else ``fit()`` (stored); with a
        token that names that fit (the digest of the history it was fitted on), for keys of results computed
        with it. A model object written to the directory needs ``to_text()`` and its class's ``from_text``."""
        def lookup(miss):
            entry = self._models.get(key)
            if entry is None or not self._serves(entry, stamp):
                return miss
            self._models.move_to_end(key)
            self.model_hits += 1
            return entry.model, entry.token

        def compute():
            found = self._read_model(key, stamp)
            if found is not None:
                return found
            model = fit()
            self._write_model(key, stamp, model)
            return model, stamp, True

        def store(found):
            model, fitted_on, fresh = found
            if fresh:
                self.fits += 1
            else:
                self.disk_hits += 1
            entry = self._models[key] = _Fit(fitted_on, model, fitted_on.digest)
            self._models.move_to_end(key)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return model, entry.token

        return self._once(("model", key), lookup, compute, store)

    def _model_path(self, key: Hashable) -> Path | None:
        return self.directory / "models" / f"{_digest(key)}.json" if self.directory is not None else None

    def _read_model(self, key: Hashable, stamp: HistoryStamp):
        path = self._model_path(key)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            fitted_on = HistoryStamp(data["keys"], date.fromisoformat(data["first_day"]), tuple(data["days"]))
            if not self._serves(_Fit(fitted_on, None, ""), stamp):
                return None
            if data["model"] is None:
                return None, fitted_on, False
            from .restock_gbm import GlobalForecaster

            return GlobalForecaster.from_text(data["model"]), fitted_on, False
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: fit again (and overwrite it)

    def _write_model(self, key: Hashable, stamp: HistoryStamp, model: Any) -> None:
        path = self._model_path(key)
        if path is None or not (model is None or hasattr(model, "to_text")):
            return
        text = json.dumps({"keys": stamp.keys, "first_day": stamp.first_day.isoformat(), "days": list(stamp.days),
                           "model": None if model is None else model.to_text()})
        try:
            _write_atomic(path, lambda fh: fh.write(text.encode()), self.max_files)
        except OSError:
            pass  # a cache that cannot be written is only slower

    # --- replayed levels -------------------------------------------------------------------------------------
    def levels(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The levels computed under ``key``, else ``compute()`` (a tuple of numpy arrays and numbers), stored
        while they fit in ``max_level_bytes``. Arrays are handed out read-only. ``repr(key)`` names the file in the
        directory, so a key must print the same in every process (numbers, strings, dates, frozen dataclasses)."""
        path = self.directory / "levels" / f"{_digest(key)}.npz" if self.directory is not None else None

        def lookup(miss):
            entry = self._levels.get(key)
            if entry is None:
                return miss
            self._levels.move_to_end(key)
            self.level_hits += 1
            return entry[0]

        def load_or_compute():
            if path is not None and path.is_file():
                try:
                    with np.load(path, allow_pickle=False) as z:
                        items = [z[f"v{i}"] for i in range(int(z["count"]))]
                    return tuple(v.item() if v.ndim == 0 else v for v in items), False
                except (OSError, ValueError, KeyError):
                    pass
            value = compute()
            if path is not None:
                arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(value)}
                try:
                    _write_atomic(path, lambda fh: np.savez(fh, count=len(value), **arrays), self.max_files)
                except OSError:
                    pass  # a cache that cannot be written is only slower
            return value, True

        def store(found):
            value, fresh = found
            if fresh:
                self.level_misses += 1
            else:
                self.disk_hits += 1
            size = sum(v.nbytes for v in value if isinstance(v, np.ndarray))
            for v in value:
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)
            if size <= self.max_level_bytes:
                self._levels[key] = (value, size)
                self._level_bytes += size
                while self._level_bytes > self.max_level_bytes:
                    _, (_, freed) = self._levels.popitem(last=False)
                    self._level_bytes -= freed
            return value

        return self._once(("levels", key), lookup, load_or_compute, store)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"fits": self.fits, "model_hits": self.model_hits, "level_hits": self.level_hits,
                    "level_misses": self.level_misses, "disk_hits": self.disk_hits, "models": len(self._models),
                    "level_entries": len(self._levels), "level_bytes": self._level_bytes}

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._levels.clear()
            self._level_bytes = 0


__all__ = ["HistoryStamp", "RestockModelCache", "stamp_history"]
