"""`Prepared`: a Core statement compiled once per dialect and run on the driver's own cursor.

The intake transaction is a handful of small statements, and SQLAlchemy's
`Connection.execute()` costs about ten times what the driver does for each of them (cache
key, execution context, result object). A `Prepared` statement keeps what matters from
SQLAlchemy, the SQL its compiler writes for the dialect, the types' bind processors (aware
UTC times, JSON, booleans) and its exception classes, and drops the rest. `Inserts` does the
same for multi-row INSERTs (events, attachments), and `Inserts.bind()` makes an INSERT's
parameters before the transaction opens (intake's `stage()`, outside the SQLite write
turn); `driver_sql` runs transaction control (BEGIN IMMEDIATE, SAVEPOINT) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from json.encoder import (  # type: ignore[attr-defined]
    JSONEncoder,
    c_make_encoder,
    encode_basestring_ascii,
)
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import JSON, Connection, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from storage.types import UTCDateTime


def _bind_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The type's bind processor for `dialect`, with shortcuts for the two that every row
    runs several times: JSON text (one encoder built once, and none for an empty list) and,
    on SQLite, UTC times (`isoformat` instead of SQLAlchemy's `%` formatting). A shortcut
    is used only when it gives SQLAlchemy's own result on a sample."""
    impl = type_.dialect_impl(dialect)
    processor = impl.bind_processor(dialect)
    if processor is None:
        return None
    fast: Callable[[Any], Any] | None = None
    if isinstance(impl, JSON):
        fast = _json_shortcut(processor)
        sample: Any = {"a": [1, 'é\n"', None, True, 1.5, {"b": [], "c": {}}], "d": []}
    elif isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        fast = _sqlite_time_shortcut(type_, dialect)
        sample = datetime(2026, 3, 1, 23, 30, 5, 1234, tzinfo=timezone(timedelta(hours=3)))
    if fast is not None and fast(sample) == processor(sample):
        return fast
    return processor


def _json_shortcut(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # json.dumps() with its defaults builds an encoder for every call; one built here does
    # the same work (ASCII output, ", " and ": ", NaN allowed). No check for circular
    # structures: the rows we write are plain data.
    encoder = None
    if c_make_encoder is not None:  # markers, default, encoder, indent, separators, flags
        args = (None, _JSON_DEFAULT, encode_basestring_ascii, None, ": ", ", ", False, False, True)
        encoder = c_make_encoder(*args)

    def process(value: Any) -> Any:
        if value.__class__ is list or value.__class__ is dict:
            if not value:
                return "[]" if value.__class__ is list else "{}"
            if encoder is not None:
                return "".join(encoder(value, 0))
        return processor(value)

    return process


# The last time converted for SQLite and its text, shared by every column: a message's rows
# carry one `received_at` object many times over (the ticket's four times, the message's,
# each event's `at`). The cell holds the datetime, so its id cannot be reused while cached;
# datetimes are immutable, so the same object always gives the same text.
_LAST_SQLITE_TIME: list[tuple[Any, Any]] = [(None, None)]


def _sqlite_time_shortcut(type_: UTCDateTime, dialect: Dialect) -> Callable[[Any], Any]:
    to_naive = type_.process_bind_param
    last = _LAST_SQLITE_TIME

    def process(value: Any) -> Any:
        seen = last[0]
        if seen[0] is value:
            return seen[1]
        naive = to_naive(value, dialect)
        text = None if naive is None else naive.isoformat(" ", "microseconds")
        last[0] = (value, text)
        return text

    return process


class _Compiled:
    """One statement for one dialect: its SQL, and how a caller's dict becomes the driver's
    parameters (values in bind order, some fixed in the statement, some processed)."""

    __slots__ = (
        "_dialect",
        "_get",
        "_keys",
        "_one",
        "_processed",
        "_results",
        "_slots",
        "_template",
        "_types",
        "positions",
        "processed_at",
        "sql",
    )

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        if compiled.insert_prefetch or compiled.update_prefetch:
            # A Python-side default would have to run per row: that is execute()'s job.
            raise ValueError("statement needs Python-side defaults; pass every column")
        self.sql = compiled.string
        names: Sequence[str] = (
            compiled.positiontup if compiled.positional and compiled.positiontup else []
        ) or list(compiled.params)
        escaped = compiled.escaped_bind_names
        template: list[Any] = []
        slots: list[int] = []  # positions the caller's values go to
        processed: list[tuple[int, Callable[[Any], Any]]] = []
        for position, name in enumerate(names):
            bind = compiled.binds[name]
            processor = _bind_processor(bind.type, dialect)
            if bind.required:
                slots.append(position)
                template.append(None)
                if processor is not None:
                    processed.append((position, processor))
            else:  # a value the statement itself carries
                value = compiled.params.get(name)
                template.append(processor(value) if processor is not None else value)
        callers = [names[i] for i in slots]
        self._get = itemgetter(*callers) if callers else None
        self._one = len(callers) == 1
        self._slots = None if len(slots) == len(names) else tuple(slots)
        self._template = template
        self._processed = tuple(processed)
        self._keys = None if compiled.positional else [escaped.get(n, n) for n in names]
        # A SELECT's result types; their processors (aware UTC times, JSON, booleans) are
        # looked up at the first execution, when the driver has described the columns.
        self._types = [
            c.type.dialect_impl(dialect)
            for c in getattr(compiled.statement, "selected_columns", ())
        ]
        self._dialect = dialect
        # Where each bind goes, and which take a processor: what `Inserts.bind()` needs
        # to leave a slot open for a value known only in the transaction (an id).
        self.positions = {name: position for position, name in enumerate(names)}
        self.processed_at = frozenset(position for position, _ in processed)
        self._results: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None

    def results(self, description: Sequence[Any]) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """(position, processor) for the columns of the rows that need one."""
        if self._results is None:
            found = []
            for position, (type_, column) in enumerate(zip(self._types, description, strict=True)):
                processor = type_.result_processor(self._dialect, column[1])
                if processor is not None:
                    found.append((position, processor))
            self._results = tuple(found)
        return self._results

    def args(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters for `params` (a list or a dict, as its paramstyle wants).
        Raises KeyError for a missing parameter."""
        values: list[Any]
        if self._get is None:
            values = list(self._template)
        else:
            got = self._get(params)
            got = (got,) if self._one else got
            if self._slots is None:
                values = list(got)
            else:
                values = list(self._template)
                for position, value in zip(self._slots, got, strict=True):
                    values[position] = value
        for position, processor in self._processed:
            values[position] = processor(values[position])
        if self._keys is None:
            return values
        return dict(zip(self._keys, values, strict=True))


class Prepared:
    """A Core statement run on the connection's DBAPI cursor, in the connection's transaction.

    Parameters are plain dicts keyed by bind name (an INSERT's by column key); `columns`
    fixes an INSERT's or UPDATE's column list, which must then cover every column that has a
    Python-side default. Errors come out as SQLAlchemy's (IntegrityError, StatementError...),
    as from `execute()`. Statement events (`before_cursor_execute`) do not see these
    statements; nothing in claimdesk listens for them.
    """

    __slots__ = ("_by_dialect", "columns", "statement")

    def __init__(self, statement: Executable, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        # Per dialect instance (one per engine): the SQL may depend on the server's version.
        self._by_dialect: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect)
        if found is None:
            compiled = self.statement.compile(  # type: ignore[attr-defined]
                dialect=dialect, column_keys=self.columns
            )
            found = self._by_dialect[dialect] = _Compiled(compiled, dialect)
        return found

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run once; the rows it returns (a SELECT's, or an INSERT's RETURNING) as tuples."""
        compiled = self._compiled(conn.dialect)
        return self._run(conn, compiled, _args(compiled, params, compiled.sql))

    def _run(self, conn: Connection, compiled: _Compiled, args: Any) -> list[Any]:
        cursor = _cursor(conn)
        try:
            cursor.execute(compiled.sql, args)
            description = cursor.description
            found = cursor.fetchall() if description is not None else []
        except Exception as exc:
            raise _wrapped(conn, exc, compiled.sql, args, cursor) from exc
        if found and compiled._types:
            processors = compiled.results(description)
            if processors:
                return [_processed(row, processors) for row in found]
        return found

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row, in one driver call (executemany)."""
        if not rows:
            return
        compiled = self._compiled(conn.dialect)
        args = [_args(compiled, row, compiled.sql) for row in rows]
        cursor = _cursor(conn)
        try:
            cursor.executemany(compiled.sql, args)
        except Exception as exc:
            raise _wrapped(conn, exc, compiled.sql, args, cursor) from exc


def _processed(row: Sequence[Any], processors: Sequence[tuple[int, Any]]) -> tuple[Any, ...]:
    values = list(row)
    for position, processor in processors:
        values[position] = processor(values[position])
    return tuple(values)


def _args(compiled: _Compiled, params: Mapping[str, Any], sql: str) -> Any:
    try:
        return compiled.args(params)
    except KeyError as exc:
        raise StatementError(
            f"A value is required for bind parameter {exc.args[0]!r}", sql, dict(params), exc
        ) from None
    except Exception as exc:  # a bind processor refused the value (a naive datetime...)
        raise StatementError(
            f"({type(exc).__module__}.{type(exc).__name__}) {exc}", sql, dict(params), exc
        ) from exc


def _cursor(conn: Connection) -> Any:
    if not conn.in_transaction():
        conn.begin()  # what execute() would do (autobegin); the caller ends it
    return _driver_cursor(conn)


_CURSOR_KEY = "claimdesk.cursor"


def _driver_cursor(conn: Connection) -> Any:
    """One cursor per DBAPI connection, kept in the pool's info for that connection and used
    again by every statement run here (psycopg builds an adapters map for each new cursor).
    A pooled connection serves one thread at a time, and every statement here reads its
    rows at once, so statements never share the cursor at the same time."""
    pooled = conn.connection
    dbapi = pooled.dbapi_connection
    kept = pooled.info.get(_CURSOR_KEY)
    if kept is not None and kept[0] is dbapi:
        return kept[1]
    cursor = pooled.cursor()
    pooled.info[_CURSOR_KEY] = (dbapi, cursor)
    return cursor


def driver_sql(conn: Connection, sql: str) -> None:
    """Run fixed SQL (BEGIN IMMEDIATE, SAVEPOINT x) on the driver's cursor, errors wrapped."""
    cursor = _driver_cursor(conn)
    try:
        cursor.execute(sql)
    except Exception as exc:
        raise _wrapped(conn, exc, sql, (), cursor) from exc


def _wrapped(conn: Connection, exc: Exception, sql: str, args: Any, cursor: Any) -> Exception:
    """The exception execute() would have raised; a lost connection is invalidated, as
    execute() does, so the pool does not hand it out again."""
    dialect = conn.dialect
    base = dialect.loaded_dbapi.Error
    if not isinstance(exc, base):
        return StatementError(f"({type(exc).__name__}) {exc}", sql, args, exc)
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    wrapped = DBAPIError.instance(
        sql, args, exc, base, connection_invalidated=lost, dialect=dialect
    )
    if lost:
        conn.invalidate(exc)
    return wrapped


@dataclass(frozen=True, slots=True)
class BoundRow:
    """One INSERT's driver parameters, made before the transaction (`Inserts.bind()`) so that
    the write turn does not convert times and encode JSON: `values` in bind order, processed
    for `dialect`, with the `open` positions (ids the transaction assigns) filled in by
    `Inserts.one_bound()`. `row` is what it was made from, for any other dialect."""

    prepared: Prepared
    dialect: Dialect
    row: Mapping[str, Any]
    values: tuple[Any, ...]
    open: tuple[tuple[int, str], ...]
    names: tuple[str, ...] | None  # the driver's parameter names (a dict paramstyle)


_JSON_DEFAULT = JSONEncoder().default
_MULTI_ROW_MAX = 16  # rows in one multi-row INSERT; more go through executemany


class Inserts:
    """INSERTs into one table as `Prepared` statements, one per column list (callers pass
    rows with the columns they have). A row that names an unknown column, or leaves out one
    with a Python-side default, goes through `execute()` instead, which knows what to do
    (run the default) or raises what it raises.

    Several rows (`many`) go in one multi-row `INSERT ... VALUES (...), (...)`: one
    statement and one round trip, where an executemany would cost PostgreSQL a pipeline."""

    __slots__ = ("_complete", "_prepared", "returning", "table")

    def __init__(self, table: Any, returning: Any = None) -> None:
        self.table = table
        self.returning = returning
        self._complete: dict[tuple[str, ...], bool] = {}
        self._prepared: dict[tuple[tuple[str, ...], int], Prepared] = {}

    def _for(self, keys: tuple[str, ...], count: int = 1) -> Prepared | None:
        """The statement for `count` rows of columns `keys`; None when `execute()` must do it."""
        prepared = self._prepared.get((keys, count))
        if prepared is not None:
            return prepared
        complete = self._complete.get(keys)
        if complete is None:
            columns = self.table.c
            complete = self._complete[keys] = all(k in columns for k in keys) and all(
                c.default is None or c.key in keys for c in columns
            )
        if not complete:
            return None
        statement = insert(self.table)
        if count > 1:
            statement = statement.values(
                [
                    {k: bindparam(f"{k}__{i}", type_=self.table.c[k].type) for k in keys}
                    for i in range(count)
                ]
            )
        if self.returning is not None:
            statement = statement.returning(self.returning)
        else:
            statement = statement.inline()  # no implicit RETURNING of the key
        prepared = self._prepared[(keys, count)] = Prepared(statement, keys if count == 1 else None)
        return prepared

    def one(self, conn: Connection, row: Mapping[str, Any]) -> Any:
        """Insert `row`; the value of the `returning` column (None without one)."""
        prepared = self._for(tuple(row))
        if prepared is None:
            statement = insert(self.table)
            if self.returning is not None:
                return conn.execute(statement.returning(self.returning), dict(row)).scalar_one()
            conn.execute(statement, dict(row))
            return None
        found = prepared.rows(conn, row)
        return found[0][0] if found else None

    def bind(
        self, dialect: Dialect, row: Mapping[str, Any], open_keys: Sequence[str] = ()
    ) -> BoundRow | None:
        """`row`'s parameters for `dialect`, made now; `open_keys` (columns of `row` whose
        values are placeholders, such as an id the transaction assigns) left to fill. None
        when that cannot be done (a value a processor refuses, a processed open key, a row
        `execute()` must insert): `one()` then meets the row in the transaction as before."""
        prepared = self._for(tuple(row))
        if prepared is None:
            return None
        compiled = prepared._compiled(dialect)
        try:
            args = compiled.args(row)
        except Exception:  # one() raises it again, in the transaction, as it always did
            return None
        slots = []
        for key in open_keys:
            position = compiled.positions.get(key)
            if position is None or position in compiled.processed_at:
                return None
            slots.append((position, key))
        names = None if compiled._keys is None else tuple(compiled._keys)
        values = tuple(args) if names is None else tuple(args[n] for n in names)
        return BoundRow(prepared, dialect, row, values, tuple(slots), names)

    def one_bound(self, conn: Connection, bound: BoundRow, fill: Mapping[str, Any]) -> Any:
        """`one(conn, {**bound.row, **fill})`, with the parameters `bind()` made."""
        if conn.dialect is not bound.dialect:
            return self.one(conn, {**bound.row, **fill})
        values = list(bound.values)
        for position, key in bound.open:
            values[position] = fill[key]
        args = values if bound.names is None else dict(zip(bound.names, values, strict=True))
        prepared = bound.prepared
        found = prepared._run(conn, prepared._compiled(conn.dialect), args)
        return found[0][0] if found else None

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert every row (an `Inserts` without `returning`): in one statement when they
        share their columns and are few, else in one driver call (executemany)."""
        assert self.returning is None, "use one() for RETURNING"
        if not rows:
            return
        keys = tuple(rows[0])
        count = len(rows)
        same = count == 1 or all(tuple(r) == keys for r in rows)
        prepared = self._for(keys, count if count <= _MULTI_ROW_MAX else 1) if same else None
        if prepared is None:
            conn.execute(insert(self.table), [dict(r) for r in rows])
        elif count == 1:
            prepared.rows(conn, rows[0])
        elif count <= _MULTI_ROW_MAX:
            prepared.rows(conn, {f"{k}__{i}": v for i, r in enumerate(rows) for k, v in r.items()})
        else:
            prepared.run_many(conn, rows)
