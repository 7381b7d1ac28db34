"""What ``RESILIENCE["REDIS"]`` may be when it is a URL, read without connecting and without Django.

A URL is one of redis-py's schemes (``redis://``, ``rediss://``, ``unix://``) or the cluster's
(``redis+cluster://``, ``rediss+cluster://``: ``cluster.py``), in any case, as urllib reads schemes.
``check_url`` finds at start-up (``resilience.E001``) what redis-py would refuse at first use, and
``redacted`` is how every message shows a setting: never its password, wherever the URL carries it.
"""

from __future__ import annotations

import re

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
URL_SCHEMES = ("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)


def is_url(setting: str) -> bool:
    """A URL of any form the library takes, as opposed to a cache alias (a scheme in capitals too:
    it is then refused as a URL, ``check_url``, not looked up in ``CACHES``)."""
    return setting[:20].lower().startswith(URL_SCHEMES)


def is_cluster_url(setting: str) -> bool:
    return setting[:20].lower().startswith(CLUSTER_SCHEMES)


def check_url(setting: str) -> None:
    """Raise ``ValueError`` when ``setting`` would give no client, or not the one meant: a scheme not
    in lower case (redis-py's rule; in any other case it is not taken for a cache alias either), a host or
    port that does not parse (a password with ``/``, ``@`` or ``:`` left unencoded), a database that
    is not a number (redis-py would quietly use 0; a cluster has only 0), a query argument of the
    wrong type. Messages must not chain the error: urllib's quote parts of the URL."""
    from urllib.parse import urlsplit

    import redis

    from resilience.storage.redis.cluster import seeds

    if not setting.startswith(URL_SCHEMES):
        raise ValueError("the scheme is in lower case")  # as redis-py reads it
    url = seeds(setting)[0] if is_cluster_url(setting) else setting
    pool = redis.ConnectionPool.from_url(url)  # parses as redis-py does; opens no connection
    try:  # its arguments as the connection takes them, still without connecting
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, redis.RedisError) as error:  # an argument it has not, or of no allowed value
        raise ValueError(str(error)) from None
    path = urlsplit(url).path.strip("/")
    if not url.startswith("unix://") and path and not path.isdigit():
        raise ValueError("the database is a number")


TLS_FILE_ARGUMENTS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")  # redis-py's arguments that name files


def tls_files(url: str) -> list[tuple[str, str]]:
    """The certificate and key files a URL's query names (``TLS_FILE_ARGUMENTS``)."""
    from urllib.parse import parse_qsl

    query = url.partition("?")[2]
    return [(name, file) for name, file in parse_qsl(query) if name in TLS_FILE_ARGUMENTS]


QUERY_ARGUMENT = re.compile(r"[?&]([^=&?#]*)=")
SECRET_WORDS = ("pass", "token", "secret", "auth", "credential")


def _first_secret(text: str) -> re.Match[str] | None:
    """The first query argument whose name (percent-decoded, as redis-py reads it) looks secret."""
    from urllib.parse import unquote

    for match in QUERY_ARGUMENT.finditer(text):
        if any(word in unquote(match.group(1)).lower() for word in SECRET_WORDS):
            return match
    return None


def redacted(setting: str) -> str:
    """``setting`` as a message may show it. A URL's user and password (all before its last ``@``,
    after the scheme) become ``***``, so ``rediss://app:pw@host:6380/0`` is ``rediss://***@host:6380/0``;
    so does the query from its first secret argument on (``?ssl_ca_certs=/ca.pem&password=***``).
    When the two cannot be told apart (an ``@`` after a secret argument: in its value, or a password
    holding ``?token=``), everything after the scheme is hidden. Used for anything that could be a
    mistyped URL, cache aliases included."""
    scheme, sep, rest = setting.partition("://")
    if not sep:
        scheme, rest = "", setting
    at = rest.rfind("@")
    secret = _first_secret(rest)
    if secret and at > secret.start():
        return f"{scheme}{sep}***"
    if secret:
        rest = rest[: secret.end()] + "***"
    if at != -1:
        rest = "***" + rest[at:]
    return f"{scheme}{sep}{rest}"
