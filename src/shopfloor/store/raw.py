"""Hot write statements on the DBAPI cursor of the caller's transaction, with SQL compiled once from the Core tables.

SQLAlchemy's execution layer (parameter construction, the execution context, result set-up) cost the checkout
writer about as much CPU as the database itself. A :class:`RawStatement` keeps what matters and drops the rest:
its SQL is the dialect's own compilation of a Core statement (so the tables and Alembic stay the single source),
each value goes through its column type's own bind processor (JSON, UTC timestamps), and DBAPI errors are raised as
SQLAlchemy's (``OperationalError``, ``IntegrityError``) so that callers' retry logic sees what it always saw. It
runs on the connection of an open ``Connection`` transaction (savepoints included), never on its own.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Connection, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable


class RawStatement:
    """``stmt`` compiled for ``dialect``; ``keys`` are the parameter names each row supplies (for an INSERT: the
    columns it writes; the others keep their server defaults). Binds not named in ``keys`` keep the constant value
    the statement gave them."""

    def __init__(self, stmt: Executable, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = (stmt.compile(dialect=dialect, column_keys=list(keys)) if getattr(stmt, "is_insert", False)
                    else stmt.compile(dialect=dialect))
        self.sql = compiled.string
        self.dialect = dialect
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        wanted = set(keys)
        plan: list[tuple[str, str | None, Any, Callable | None]] = []
        for name in names:
            bp = compiled.binds[name]
            proc = bp.type._cached_bind_processor(dialect)
            if bp.key in wanted:
                plan.append((name, bp.key, None, proc))
            else:
                value = bp.effective_value
                plan.append((name, None, proc(value) if proc is not None else value, None))
        missing = wanted - {p[1] for p in plan}
        if missing:
            raise ValueError(f"the statement has no parameter for: {', '.join(sorted(missing))}")
        self._plan = plan
        self._positional = compiled.positional
        self._params = _params_builder(plan, compiled.positional,
                                       {bp.key for bp in compiled.binds.values() if _is_datetime(bp.type)})

    def parameters(self, row: dict[str, Any]) -> tuple | dict:
        """The DBAPI parameters for ``row``, for a caller running :attr:`sql` on a DBAPI cursor of its own."""
        return self._params(row)

    def execute(self, conn: Connection, row: dict[str, Any]) -> int:
        """Run the statement once on ``conn``'s DBAPI connection; returns the cursor's rowcount."""
        params = self._params(row)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, params)
            return cursor.rowcount
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(self.sql, params, exc, self.dialect.loaded_dbapi.Error,
                                      dialect=self.dialect) from exc
        finally:
            cursor.close()

    def fetchall(self, conn: Connection, row: dict[str, Any]) -> list[tuple]:
        """Run a SELECT once on ``conn``'s DBAPI connection; its rows as the driver returns them (no result
        processing: meant for columns whose driver values are already the Python values, strings and integers)."""
        params = self._params(row)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, params)
            return cursor.fetchall()
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(self.sql, params, exc, self.dialect.loaded_dbapi.Error,
                                      dialect=self.dialect) from exc
        finally:
            cursor.close()

    def executemany(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per row on ``conn``'s DBAPI connection, inside its open transaction."""
        if not rows:
            return
        params = [self._params(r) for r in rows]
        cursor = conn.connection.cursor()
        try:
            if len(params) == 1:
                cursor.execute(self.sql, params[0])
            else:
                cursor.executemany(self.sql, params)
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(self.sql, params[:1], exc, self.dialect.loaded_dbapi.Error,
                                      dialect=self.dialect) from exc
        finally:
            cursor.close()


def _is_datetime(type_: Any) -> bool:
    """Whether a bind's type is a datetime (``DateTime`` or a type decorating it, such as the UTC one)."""
    affinity = getattr(type_, "_type_affinity", None)
    return isinstance(affinity, type) and issubclass(affinity, DateTime)


def _memo_last(proc: Callable) -> Callable:
    """``proc`` with a one-entry memo on the argument's identity: a group commit binds the same few datetimes
    (its ``now``, an expiry) into every row, and the UTC type's conversion to the driver's form is the costliest
    part of a row's parameters. Only for immutable values (datetimes): the memo holds the argument, so its
    identity cannot be reused while it is remembered."""
    last = [(object(), None)]  # (argument, result), replaced as a whole: another thread sees one pair or the other

    def memo(value: Any) -> Any:
        seen, out = last[0]
        if value is seen:
            return out
        out = proc(value)
        last[0] = (value, out)
        return out

    return memo


def _params_builder(plan: list[tuple[str, str | None, Any, Callable | None]], positional: bool,
                    datetime_keys: set[str]) -> Callable[[dict[str, Any]], tuple | dict]:
    """A function ``row -> DBAPI parameters``, generated once per statement: one expression per bind (a constant,
    ``row[key]``, or ``proc(row[key])``) instead of a loop over the plan for every row. Same values as before."""
    names: dict[str, Any] = {}
    parts = []
    for i, (name, key, const, proc) in enumerate(plan):
        if key is None:
            names[f"c{i}"] = const
            expr = f"c{i}"
        elif proc is None:
            expr = f"row[{key!r}]"
        else:
            names[f"p{i}"] = _memo_last(proc) if key in datetime_keys else proc
            expr = f"p{i}(row[{key!r}])"
        parts.append(expr if positional else f"{name!r}: {expr}")
    body = f"({', '.join(parts)},)" if positional else f"{{{', '.join(parts)}}}"
    if positional and not parts:
        body = "()"
    src = f"def params(row):\n    return {body}\n"
    exec(compile(src, "<raw-statement-params>", "exec"), names)  # noqa: S102 - built from our own bind names
    return names["params"]


#: Dialect names whose statements run on the raw cursor; on the others :class:`RawStatements` runs the same Core
#: statements through ``Connection.execute`` (set from settings by :func:`use_raw_writer_on`).
_RAW_DIALECTS: set[str] = {"sqlite", "postgresql"}


def use_raw_writer_on(dialects: Iterable[str]) -> None:
    """Run :class:`RawStatements` on the raw DBAPI cursor only for these dialect names (``sqlite``, ``postgresql``);
    the others go through SQLAlchemy's execution layer with the same statements."""
    _RAW_DIALECTS.clear()
    _RAW_DIALECTS.update(d.strip() for d in dialects if d.strip())


class RawStatements:
    """:class:`RawStatement` objects built on first use per (engine dialect, name, keys): the keys a batch's rows
    carry are fixed by the code that builds them, so each statement is compiled about once per engine."""

    def __init__(self, build: Callable[[Any], Executable]) -> None:
        self._build = build
        self._by_dialect: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _get(self, conn: Connection, name: Any, keys: tuple[str, ...]) -> RawStatement:
        dialect = conn.dialect
        cache = self._by_dialect.get(dialect)
        if cache is None:
            cache = self._by_dialect[dialect] = {}
        stmt = cache.get((name, keys))
        if stmt is None:
            stmt = cache[(name, keys)] = RawStatement(self._build(name), dialect, keys)
        return stmt

    def execute(self, conn: Connection, name: Any, row: dict[str, Any]) -> int:
        """One row; returns the rowcount (for guarded updates)."""
        if conn.dialect.name not in _RAW_DIALECTS:
            return conn.execute(self._build(name), row).rowcount
        return self._get(conn, name, tuple(row)).execute(conn, row)

    def fetchall(self, conn: Connection, name: Any, row: dict[str, Any]) -> list[tuple]:
        """A SELECT's rows (tuples in the statement's column order). ``name`` may carry the shape of the statement
        (``("prices", 3)``: an ``IN`` list of three, each value its own parameter), so each shape is compiled once."""
        if conn.dialect.name not in _RAW_DIALECTS:
            return [tuple(r) for r in conn.execute(self._build(name), row)]
        return self._get(conn, name, tuple(row)).fetchall(conn, row)

    def run(self, conn: Connection, name: Any, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name not in _RAW_DIALECTS:
            conn.execute(self._build(name), list(rows))
            return
        keys = tuple(rows[0])
        stmt = self._get(conn, name, keys)
        if any(tuple(r) != keys for r in rows):  # rows of another shape: group them by their keys
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for r in rows:
                groups.setdefault(tuple(r), []).append(r)
            for group in groups.values():
                self.run(conn, name, group)
            return
        stmt.executemany(conn, rows)


def in_list(values: Sequence[Any]) -> list[Any]:
    """``values`` (not empty) padded to the next IN-list length of a few fixed sizes (1, 2, 4, ... 64, then
    multiples of 64) by repeating the last value: a repeated value changes no ``IN`` test, and a statement keyed by
    the length of its list is then compiled a handful of times per engine instead of once for every batch size
    (a compile costs more than the look-up itself)."""
    n = len(values)
    size = 1
    while size < n and size < 64:
        size *= 2
    if n > size:
        size = -(-n // 64) * 64
    out = list(values)
    out.extend([out[-1]] * (size - n))
    return out


def run_driver_sql(conn: Connection, sql: str) -> None:
    """One parameterless statement (``BEGIN``, ``SAVEPOINT``...) on ``conn``'s DBAPI cursor, skipping SQLAlchemy's
    execution path; the driver's errors are raised as SQLAlchemy's (a busy SQLite database is an
    ``OperationalError``), as ``exec_driver_sql`` raises them."""
    dialect = conn.dialect
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    finally:
        cursor.close()


class RawSavepoint:
    """A ``SAVEPOINT`` on the DBAPI connection of ``conn``'s open transaction, with the ``commit``/``rollback``
    of SQLAlchemy's nested transaction (:func:`begin_savepoint`). SQLAlchemy's own ``begin_nested`` compiles a
    fresh savepoint clause every time (those clauses are not cached): in the checkout writer that cost more than
    the statements the savepoint guards.

    Every one has the same name: savepoints are ended in the reverse order of their making (each is a block of
    the caller's code), and both databases end the most recent savepoint of a name, so nesting works. One name
    keeps the SQL text fixed: PostgreSQL's driver counts statements by text to decide which to prepare, and a
    fresh name per savepoint would crowd the hot statements out of that count."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._run("SAVEPOINT sf_savepoint")

    def _run(self, sql: str) -> None:
        run_driver_sql(self._conn, sql)

    def commit(self) -> None:
        self._run("RELEASE SAVEPOINT sf_savepoint")

    def rollback(self) -> None:
        self._run("ROLLBACK TO SAVEPOINT sf_savepoint")
        self._run("RELEASE SAVEPOINT sf_savepoint")


def begin_savepoint(conn: Connection) -> Any:
    """A savepoint in ``conn``'s open transaction, to be ended with ``commit()`` or ``rollback()``: raw on the
    databases of the raw writer, else SQLAlchemy's ``begin_nested()``."""
    if conn.dialect.name not in _RAW_DIALECTS:
        return conn.begin_nested()
    return RawSavepoint(conn)

