"""Embedding server URLs: the endpoint to post to, its credentials kept apart, and a
form safe to print.

A ``--url`` may carry user-info (``http://user:pw@host``). It never reaches httpx as
is — httpx would silently turn it into Basic auth — and never appears in any output:
:func:`redact_url` is the one way to show a URL (errors, ledger labels, ``repr``;
index metadata and NDJSON call it too).

Which credential is sent when both exist: the API key from the environment
(``FUNCPIPE_API_KEY`` / ``OPENAI_API_KEY``) as a bearer token wins, and the URL's
user-info is then not sent at all; the user-info is sent as HTTP Basic auth only when
no key is set. :attr:`ServerUrl.credential_note` names the choice for errors.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from ..errors import ConfigError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# Query parameters that carry secrets by convention (?api_key=, ?token=, ?sig=).
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its user-info and secret-looking query values replaced by ``***``.

    Never raises, whatever the input: it is used to show URLs that failed to parse.

    >>> redact_url("http://user:s3cret@host:8000/v1?api_key=k&x=1")
    'http://***@host:8000/v1?api_key=***&x=1'
    """
    shown = _without_userinfo(url)
    head, sep, tail = shown.partition("?")
    if not sep:
        return shown
    query, hash_, fragment = tail.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(k) for k, _ in pairs):
        return shown
    masked = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return f"{head}?{masked}{hash_}{fragment}"


def _without_userinfo(url: str) -> str:
    """``url`` with ``***`` for its user-info, read generously: a password typed with a
    raw ``/``, ``?``, ``#`` or ``@`` (which should be percent-encoded) is still hidden
    whole, even when the URL does not parse."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    rest = url[scheme.end() :]
    at = rest.rfind("@")
    if at >= 0 and "/" not in rest[:at]:
        return f"{scheme.group()}***{rest[at:]}"
    authority_end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, authority_end)
    if at >= 0:
        return f"{scheme.group()}***{rest[at:]}"
    return url


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """Where to post, and with which credential; ``repr`` shows no secret.

    >>> ServerUrl.parse("http://127.0.0.1:8080", "/embed").endpoint
    'http://127.0.0.1:8080/embed'
    >>> ServerUrl.parse("http://h:8000/v1/", "/v1/embeddings", strip_v1=True).endpoint
    'http://h:8000/v1/embeddings'
    >>> ServerUrl.parse("http://u:pw@h", "/embed").shown
    'http://h/embed'
    """

    endpoint: str  # no user-info: this is what httpx gets
    route: str  # the protocol's path, for a 404 hint
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def shown(self) -> str:
        """The endpoint as printed (query secrets masked)."""
        return redact_url(self.endpoint)

    @property
    def has_userinfo(self) -> bool:
        return bool(self.username or self.password)

    @classmethod
    def parse(cls, url: str, route: str, *, strip_v1: bool = False) -> ServerUrl:
        """The endpoint ``route`` under the base URL ``url``; raises ``ConfigError``.

        With ``strip_v1`` one trailing ``/v1`` of the base is dropped, so the base URL
        form the OpenAI SDK documents (``http://host:8000/v1``) works as well.
        """
        # Imported here: the settings import this module, and httpx imports its own
        # command line (click, Rich) whenever click is installed.
        import httpx

        text = url.strip()
        if not text.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"--url must start with http:// or https://, got {redact_url(text)!r}"
            )
        try:
            parsed = httpx.URL(text)
        except httpx.InvalidURL:
            # httpx's message may quote part of the password (as a bad port number).
            raise ConfigError(f"--url is not a valid URL: {redact_url(text)!r}") from None
        if not parsed.host:
            raise ConfigError(f"--url has no host: {redact_url(text)!r}")
        base = parsed.path.rstrip("/")
        if strip_v1 and base.endswith("/v1"):
            base = base[: -len("/v1")]
        endpoint = parsed.copy_with(userinfo=b"", path=base + route, fragment=None)
        return cls(str(endpoint), route, parsed.username, parsed.password)

    def auth_header(self, api_key: str | None) -> tuple[dict[str, str], str]:
        """The Authorization header to send, and a note naming the credential used."""
        if api_key:
            note = "bearer API key from the environment"
            if self.has_userinfo:
                note += "; the user-info in --url was not sent"
            return {"Authorization": f"Bearer {api_key}"}, note
        if self.has_userinfo:
            token = _basic_token(self.username, self.password)
            return {"Authorization": f"Basic {token}"}, "basic auth from the user-info in --url"
        return {}, "none"

    def secrets(self, api_key: str | None) -> tuple[str, ...]:
        """Every secret string a message must never contain (longest first): the key,
        the user-info (a username may be a token) and its Basic-auth encoding."""
        found = {self.username, self.password, api_key or ""}
        if self.has_userinfo:
            found.add(_basic_token(self.username, self.password))
        # Very short strings would garble the text they are scrubbed from.
        return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))


def _basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``.

    A last line of defence for text funcpipe does not write itself (a server's error
    body, an exception message): a server may echo a request back.
    """
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def without_credentials(url: str) -> str:
    """``url`` with no user-info at all and its secret-looking query values masked: the
    form a URL is *stored* in (an index remembers its server; never its secrets).

    >>> without_credentials("http://user:s3cret@host:8000/v1?api_key=k&x=1")
    'http://host:8000/v1?api_key=***&x=1'
    """
    masked = redact_url(url)
    scheme = _SCHEME.match(masked)
    if scheme is not None and masked[scheme.end() :].startswith("***@"):
        return scheme.group() + masked[scheme.end() + 4 :]
    return masked
