"""URLs as they may be shown or stored: never with the credentials in them."""

from __future__ import annotations

import urllib.parse


def redact_url(url: str) -> str:
    """``url`` without its user-info (``http://user:pw@host`` -> ``http://host``)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url if "@" not in url else "<a URL that cannot be parsed>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
