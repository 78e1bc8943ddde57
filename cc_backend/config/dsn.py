"""MySQL DSNs: go-sql-driver's ``user:pass@tcp(host:port)/db?params`` and ``mysql://`` URLs, as SQLAlchemy URLs."""

from __future__ import annotations

import dataclasses
import math
import re
from urllib.parse import parse_qsl

from cc_backend.config.durations import parse_go_duration
from cc_backend.config.messages import show_value

# go-sql-driver/mysql form: [user[:password]@][net[(addr)]]/dbname[?params]. The password part is
# greedy so that it may contain '@', ':' and '/'; backtracking picks the last '@' that still leaves a
# valid address and database name behind it, which is what the Go parser does.
_GO_DSN = re.compile(
    r"^(?:(?P<user>[^:@]*)(?::(?P<password>.*))?@)?"
    r"(?:(?P<net>[A-Za-z0-9]+)(?:\((?P<addr>[^)]*)\))?)?"
    r"/(?P<dbname>[^?/]*)(?:\?(?P<params>.*))?$",
    re.DOTALL,
)
# go-sql-driver parameters that mean something to PyMySQL, with PyMySQL's name.
_DSN_PARAM_MAP = {"charset": "charset", "collation": "collation", "timeout": "connect_timeout", "readTimeout": "read_timeout", "writeTimeout": "write_timeout"}


@dataclasses.dataclass(frozen=True)
class MySQLTarget:
    """The parts of a MySQL connection, whichever syntax ``main.db`` used."""

    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: dict[str, str]
    #: DSN parameters that have no PyMySQL equivalent and were left out.
    dropped: tuple[str, ...] = ()


def parse_mysql_db(db: str) -> MySQLTarget:
    """Parse ``main.db`` for ``db-driver: mysql``: a go-sql-driver DSN or a ``mysql[+pymysql]://`` URL.

    Raises ``ValueError`` naming what is wrong.
    """
    if "://" in db:
        return _parse_mysql_url(db)
    match = _GO_DSN.match(db)
    if match is None:
        raise ValueError(
            f'expected a MySQL DSN like "user:password@tcp(host:3306)/dbname" or a URL like "mysql+pymysql://user:password@host:3306/dbname", got {show_value(db)}'
        )
    net = match.group("net") or "tcp"
    addr = match.group("addr")
    host: str | None
    port: int | None = None
    query: dict[str, str] = {}
    if net == "unix":
        if not addr:
            raise ValueError('unix(...) needs the socket path, e.g. "user:pw@unix(/run/mysqld/mysqld.sock)/dbname"')
        host = None
        query["unix_socket"] = addr
    elif net in ("tcp", "tcp6"):
        host, port = _split_host_port(addr or "127.0.0.1:3306")
    else:
        raise ValueError(f"unsupported network {show_value(net)} in MySQL DSN (expected tcp or unix)")
    if not match.group("dbname"):
        raise ValueError('the MySQL DSN names no database (expected ".../dbname")')
    dropped: list[str] = []
    for key, value in parse_qsl(match.group("params") or "", keep_blank_values=True):
        target = _DSN_PARAM_MAP.get(key)
        if target is None:
            dropped.append(key)
        elif target == "charset":
            # Go accepts a fallback list ("utf8mb4,utf8"); PyMySQL takes exactly one charset.
            query[target] = value.split(",")[0]
        elif target.endswith("timeout"):
            try:
                seconds = parse_go_duration(value).total_seconds()
            except ValueError as exc:
                raise ValueError(f"DSN parameter {key}: {exc}") from None
            query[target] = str(max(1, math.ceil(seconds)))
        else:
            query[target] = value
    query.setdefault("charset", "utf8mb4")
    return MySQLTarget(match.group("user") or None, match.group("password"), host, port, match.group("dbname"), query, tuple(dropped))


def _parse_mysql_url(db: str) -> MySQLTarget:
    from sqlalchemy.engine import make_url  # lazy: importing SQLAlchemy costs ~180 ms, only needed here
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except ArgumentError as exc:
        raise ValueError(f"not a valid SQLAlchemy URL: {exc}") from None
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise ValueError(f'expected a mysql:// or mysql+pymysql:// URL for db-driver "mysql", got scheme {show_value(url.drivername)}')
    if url.get_driver_name() not in ("pymysql", "mysqldb") and "+" in url.drivername:
        raise ValueError(f"only the pymysql driver is installed, got {show_value(url.drivername)}")
    if not url.database:
        raise ValueError('the MySQL URL names no database (expected ".../dbname")')
    query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
    query.setdefault("charset", "utf8mb4")
    return MySQLTarget(url.username, url.password, url.host, url.port, url.database, query)


def _split_host_port(addr: str) -> tuple[str, int | None]:
    if addr.startswith("["):  # [ipv6]:port
        host, _, rest = addr[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = addr.rpartition(":") if ":" in addr else (addr, "", "")
    if port_text and not port_text.isdigit():
        raise ValueError(f"invalid port {show_value(port_text)} in MySQL address {show_value(addr)}")
    return host or "127.0.0.1", int(port_text) if port_text else 3306


def mysql_url(db: str) -> str:
    """The SQLAlchemy URL (``mysql+pymysql://...``) for a ``main.db`` DSN or URL; special characters are escaped."""
    from sqlalchemy.engine import URL  # lazy, see _parse_mysql_url

    target = parse_mysql_db(db)
    url = URL.create("mysql+pymysql", target.username, target.password, target.host, target.port, target.database, target.query)
    return url.render_as_string(hide_password=False)
