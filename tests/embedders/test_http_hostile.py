"""HttpEmbedder against real loopback servers that attack the client: answers that
trickle, never end or lie about their size, redirects, secrets in the URL, servers that
refuse base64. Each server is a raw socket server written in the test
(:mod:`tests.embedders.loopback`), so every byte on the wire is the test's choice."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from funcpipe_rag.embedders.answers import MIB, answer_cap
from funcpipe_rag.embedders.http import HttpEmbedder
from funcpipe_rag.embedders.urls import ServerUrl, redact_url
from funcpipe_rag.errors import ConfigError
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.policies.retries import RetryPolicy
from funcpipe_rag.result import Err, ErrInfo, Ok
from tests.embedders.loopback import (
    Reply,
    Request,
    drip,
    endless_chunked,
    huge_content_length,
    loopback,
    openai_answer,
)
from tests.fakes import FakeClock


def embedder(url: str, *, budget: float = 10.0, **kw: Any) -> HttpEmbedder:
    kw.setdefault("model", "m")
    kw.setdefault("protocol", "openai")
    return HttpEmbedder(
        url=url,
        ledger=kw.pop("ledger", ResourceLedger()),
        retry=RetryPolicy(max_attempts=kw.pop("attempts", 4), max_elapsed=budget),
        **kw,
    )


def embed_one(emb: HttpEmbedder, texts: list[str] | None = None) -> list[Any]:
    try:
        return emb.embed_batch(texts or ["a"])
    finally:
        emb.close()


def only_error(results: list[Any]) -> ErrInfo:
    assert results and all(isinstance(r, Err) for r in results), results
    err = results[0].error
    assert isinstance(err, ErrInfo)
    assert all(r.error == err for r in results), results
    return err


def vm_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


# -- 1. a total deadline and a size cap ------------------------------------------


@pytest.mark.parametrize("from_status_line", [True, False], ids=["status-line", "body"])
def test_a_server_dripping_a_byte_every_0_2_s_is_cut_off_at_the_budget(
    from_status_line: bool,
) -> None:
    budget = 1.5
    with loopback(drip(from_status_line=from_status_line)) as server:
        # The read timeout (30 s) never fires: a byte arrives every 0.2 s.
        emb = embedder(server.url, budget=budget, read_timeout=30.0)
        t0 = time.monotonic()
        err = only_error(embed_one(emb))
        elapsed = time.monotonic() - t0
    assert elapsed < budget + 1.5, elapsed
    assert err.code == "EMBED/DEADLINE", err
    assert err.ctx["gave_up"] == "retry budget spent"
    assert err.ctx["received"] > 0


def test_an_endless_chunked_answer_stops_at_the_cap_in_bounded_memory() -> None:
    with loopback(endless_chunked) as server:
        emb = embedder(server.url)
        with open("/proc/self/clear_refs", "w") as f:  # VmHWM := VmRSS from here on
            f.write("5")
        before = vm_kib("VmHWM")
        err = only_error(embed_one(emb))
        growth_mib = (vm_kib("VmHWM") - before) / 1024
    assert err.code == "EMBED/TOO_BIG_ANSWER", err
    assert err.ctx["cap_bytes"] == answer_cap(1, 0, 0) < 2 * MIB
    assert growth_mib < 50, growth_mib
    # The client stopped reading: what the server got out is the cap plus socket buffers.
    assert server.sent < 32 * MIB, server.sent


def test_a_200_mb_content_length_is_refused_at_the_header_without_reading() -> None:
    with loopback(huge_content_length) as server:
        err = only_error(embed_one(embedder(server.url)))
    assert err.code == "EMBED/TOO_BIG_ANSWER", err
    assert "Content-Length 209715200" in err.msg
    assert server.sent < 32 * MIB, server.sent


def test_max_answer_mb_is_the_cap_when_set() -> None:
    def answer(request: Request, reply: Reply) -> None:
        reply.json(200, openai_answer(request, dim=4096, base64_ok=False))

    with loopback(answer) as server:
        ok = embed_one(embedder(server.url, max_answer_mb=64.0), ["a"] * 4)
        small = only_error(embed_one(embedder(server.url, max_answer_mb=0.01), ["a"] * 4))
    assert all(isinstance(r, Ok) for r in ok)
    assert small.code == "EMBED/TOO_BIG_ANSWER" and small.ctx["cap_bytes"] == int(0.01 * MIB)


def test_a_compressed_answer_nobody_asked_for_is_capped_on_its_decoded_size() -> None:
    seen: list[str] = []
    bomb = gzip.compress(b" " * (64 * MIB))  # ~64 KiB on the wire

    def answer(request: Request, reply: Reply) -> None:
        seen.append(request.headers.get("accept-encoding", ""))
        if len(seen) == 1:
            body = gzip.compress(json.dumps(openai_answer(request)).encode())
        else:
            body = bomb
        reply.answer(200, body, {"Content-Encoding": "gzip"})

    with loopback(answer) as server:
        emb = embedder(server.url)
        try:
            first = emb.embed_batch(["a"])
            err = only_error(emb.embed_batch(["b"]))
        finally:
            emb.close()
    assert seen == ["identity", "identity"]
    assert isinstance(first[0], Ok)
    assert err.code == "EMBED/TOO_BIG_ANSWER"


def test_json_nested_too_deep_is_a_bad_answer_not_a_crash() -> None:
    def answer(request: Request, reply: Reply) -> None:
        reply.answer(200, b"[" * 200_000)  # well under the cap

    with loopback(answer) as server:
        err = only_error(embed_one(embedder(server.url)))
    assert err.code == "EMBED/BAD_JSON" and "nested too deep" in err.msg


def test_splits_and_retries_of_one_batch_share_one_budget() -> None:
    # Every request "takes" 20 s of the fake clock and is refused as too large: with a
    # fresh budget per split this batch of 8 would cost 15 requests.
    clock = FakeClock()
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(len(json.loads(request.content)["inputs"]))
        clock.now += 20
        return httpx.Response(413)

    emb = HttpEmbedder(
        protocol="tei", url="http://127.0.0.1:9", model="", ledger=ResourceLedger(),
        clock=clock, retry=RetryPolicy(max_elapsed=45.0), transport=httpx.MockTransport(handler),
    )  # fmt: skip
    results = embed_one(emb, [f"t{i}" for i in range(8)])
    assert calls == [8, 4, 2]
    codes = {r.error.code for r in results if isinstance(r, Err)}
    assert len(results) == 8 and codes == {"EMBED/DEADLINE"}


# -- 2. secrets in URLs ------------------------------------------------------------


@pytest.mark.parametrize("api_key", ["sk-from-env", None], ids=["key-set", "no-key"])
def test_url_user_info_is_never_shown_and_the_credential_rule_holds(api_key: str | None) -> None:
    auth: list[str] = []

    def answer(request: Request, reply: Reply) -> None:
        auth.append(request.headers.get("authorization", ""))
        # A server that echoes what it was sent, secrets included.
        reply.json(401, {"error": f"bad credentials for user:s3cret ({auth[-1]})"})

    ledger = ResourceLedger()
    with loopback(answer) as server:
        url = server.url.replace("http://", "http://user:s3cret@")
        emb = embedder(url, api_key=api_key, ledger=ledger)
        shown = [repr(emb), json.dumps(ledger.snapshot().to_jsonable())]
        err = only_error(embed_one(emb))
    if api_key:
        assert auth == ["Bearer sk-from-env"]
        assert "user-info in --url was not sent" in err.msg
    else:
        assert auth == ["Basic " + base64.b64encode(b"user:s3cret").decode()]
        assert "basic auth from the user-info" in err.msg
    assert err.code == "EMBED/HTTP_401" and err.ctx["credential"] in err.msg
    for text in [*shown, json.dumps(err.to_jsonable())]:
        assert "s3cret" not in text and "sk-from-env" not in text, text
        assert base64.b64encode(b"user:s3cret").decode() not in text
    assert "http://127.0.0.1" in err.msg


def test_a_bad_url_is_a_config_error_that_shows_no_password() -> None:
    for url in ("http://user:pa/ss@host", "http://user:pass@host:notaport", "ftp://u:pass@h"):
        with pytest.raises(ConfigError) as caught:
            embedder(url)
        assert "pass" not in str(caught.value) and "ss@" not in str(caught.value)


@given(
    st.text(st.sampled_from("abcXYZ019:/?#@%-._~!$&'()*+,;="), min_size=4, max_size=20),
    st.sampled_from(["", "/v1", "/v1?x=1", "#f"]),
)
def test_redact_url_hides_any_user_info(password: str, tail: str) -> None:
    # A raw "/" and a later "?" or "#" make a URL that is valid with no user-info at all
    # ("https://user:0/#@h" is host "user", fragment "@h"): not a password to find.
    assume(not ("/" in password and ("?" in password or "#" in password)))
    assume(password not in f"https://***@example.net:8443{tail}")
    shown = redact_url(f"https://user:{password}@example.net:8443{tail}")
    assert password not in shown
    assert "user" not in shown


def test_redact_url_keeps_what_is_not_secret() -> None:
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert redact_url("http://u:p@h/x?api_key=k&q=1") == "http://***@h/x?api_key=***&q=1"
    assert redact_url("not a url") == "not a url"


# -- 3. redirects ------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 307])
def test_a_redirect_is_named_and_not_followed(status: int) -> None:
    def answer(request: Request, reply: Reply) -> None:
        where = f"http://user:pw123@127.0.0.1:{server.port}/elsewhere"
        reply.answer(status, b"", {"Location": where})

    with loopback(answer) as server:
        err = only_error(embed_one(embedder(server.url)))
        paths = server.paths()
    assert paths == ["/v1/embeddings"]  # one request: the redirect was not followed
    assert err.code == "EMBED/REDIRECT" and err.ctx["status"] == status
    assert err.ctx["location"] == f"http://***@127.0.0.1:{server.port}/elsewhere"
    assert "pw123" not in json.dumps(err.to_jsonable())
    assert err.ctx["gave_up"] == "not retryable"


# -- 4. the /v1 base URL and 404 hints -----------------------------------------------


def openai_route_only(request: Request, reply: Reply) -> None:
    if request.path == "/v1/embeddings":
        reply.json(200, openai_answer(request))
    else:
        reply.json(404, {"detail": "Not Found"})


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_the_openai_sdk_base_url_form_is_accepted(suffix: str) -> None:
    with loopback(openai_route_only) as server:
        results = embed_one(embedder(server.url + suffix))
        paths = server.paths()
    assert all(isinstance(r, Ok) for r in results)
    assert paths == ["/v1/embeddings"]


@pytest.mark.parametrize(
    ("protocol", "suffix", "tried", "route"),
    [
        ("tei", "/v1", "/v1/embed", "/embed"),
        ("ollama", "/api", "/api/api/embed", "/api/embed"),
        ("openai", "/v2", "/v2/v1/embeddings", "/v1/embeddings"),
    ],
)
def test_a_404_names_the_url_tried_and_the_route_expected(
    protocol: str, suffix: str, tried: str, route: str
) -> None:
    with loopback(openai_route_only) as server:
        err = only_error(embed_one(embedder(server.url + suffix, protocol=protocol)))
    assert err.code == "EMBED/HTTP_404"
    assert f"{server.url}{tried} answered 404" in err.msg
    assert f"posts to <--url>{route}" in err.msg and "base URL" in err.msg


# -- 5. base64 by default, float when the server wants it --------------------------


def test_openai_requests_ask_for_base64_by_default() -> None:
    def answer(request: Request, reply: Reply) -> None:
        reply.json(200, openai_answer(request))

    with loopback(answer) as server:
        results = embed_one(embedder(server.url), ["a", "b"])
        (request,) = server.requests
    assert request.json()["encoding_format"] == "base64"
    assert [r.value.tolist()[:2] for r in results] == [[1.0, 0.0], [0.0, 1.0]]


def test_a_server_that_answers_floats_to_a_base64_request_still_works() -> None:
    def answer(request: Request, reply: Reply) -> None:
        reply.json(200, openai_answer(request, base64_ok=False))

    with loopback(answer) as server:
        results = embed_one(embedder(server.url), ["a", "b"])
    assert all(isinstance(r, Ok) for r in results)


@pytest.mark.parametrize("status", [400, 422])
def test_a_server_refusing_base64_gets_float_once_and_for_the_rest_of_the_run(
    status: int,
) -> None:
    def answer(request: Request, reply: Reply) -> None:
        if request.json().get("encoding_format") != "float":
            message = "encoding_format: Input should be 'float'"
            reply.json(status, {"error": {"message": message, "type": "invalid_request_error"}})
        else:
            reply.json(200, openai_answer(request))

    with loopback(answer) as server:
        emb = embedder(server.url, attempts=1)
        try:
            first = emb.embed_batch(["a", "b"])
            second = emb.embed_batch(["c"])
            assert emb.encoding_format == "float"
        finally:
            emb.close()
        formats = [r.json()["encoding_format"] for r in server.requests]
    assert all(isinstance(r, Ok) for r in first + second)
    assert formats == ["base64", "float", "float"]


def test_a_400_about_something_else_is_not_an_encoding_fallback() -> None:
    def answer(request: Request, reply: Reply) -> None:
        reply.json(400, {"error": {"message": "unknown model 'm'"}})

    with loopback(answer) as server:
        err = only_error(embed_one(embedder(server.url)))
        formats = [r.json()["encoding_format"] for r in server.requests]
    assert err.code == "EMBED/HTTP_400" and formats == ["base64"]


def test_server_url_parts() -> None:
    url = ServerUrl.parse("https://u:p@h:1/base/v1/?q=1", "/v1/embeddings", strip_v1=True)
    assert url.endpoint == "https://h:1/base/v1/embeddings?q=1"
    assert (url.username, url.password) == ("u", "p")
    assert repr(url) == (
        "ServerUrl(endpoint='https://h:1/base/v1/embeddings?q=1', route='/v1/embeddings')"
    )
