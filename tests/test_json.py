"""JSON for scripts, on the real server's real HTTP port: creates with
``Accept: application/json``, errors in JSON, ``GET /KEY?meta``; and that a
client without that header still gets exactly today's text."""

from __future__ import annotations

import json
import subprocess
from email.utils import parsedate_to_datetime

import pytest
import trio

from ncpaste.core import keys
from ncpaste.core.units import iso_utc

from conftest import TEST_TIMEOUT_S, fetch, key_of, nc, start_server

JSON = {"Accept": "application/json"}
LOG = b"".join(b"step %d: ok\n" % n for n in range(1, 41))
SECRET_LINE = b"export GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a\n"
# What a create answers, and nothing more: the URL line and these headers.
TEXT_CREATE_HEADERS = {"content-type", "location", "x-delete-token", "x-expires", "content-length"}


def as_json(reply) -> dict:  # type: ignore[no-untyped-def]
    assert reply.headers["content-type"] == "application/json", reply.headers
    assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1
    assert int(reply.headers["content-length"]) == len(reply.body)
    return json.loads(reply.body)


async def create_json(server, body: bytes = LOG, query: str = "") -> dict:  # type: ignore[no-untyped-def]
    reply = await fetch(server.http_port, "POST", "/" + query, body, JSON)
    assert reply.status == 201, reply.body
    return as_json(reply)


# -- creates ------------------------------------------------------------------------------


async def test_create_answers_every_field_and_they_are_true(server):
    reply = await fetch(server.http_port, "POST", "/?expire=1h", LOG, JSON)
    assert reply.status == 201
    created = as_json(reply)
    assert set(created) == {"url", "key", "expires", "delete_token", "size", "redacted"}
    assert created["url"] == f"http://127.0.0.1:{server.http_port}/{created['key']}"
    assert reply.headers["location"] == created["url"]
    assert reply.headers["x-delete-token"] == created["delete_token"]
    assert (created["size"], created["redacted"]) == (len(LOG), 0)
    expires_header = parsedate_to_datetime(reply.headers["x-expires"])
    assert created["expires"] == expires_header.strftime("%Y-%m-%dT%H:%M:%SZ")  # whole seconds, for jq
    got = await fetch(server.http_port, "GET", "/" + created["key"])
    assert got.body == LOG
    # The token deletes the paste: it is the real one.
    gone = await fetch(server.http_port, "DELETE", "/" + created["key"], headers={"X-Delete-Token": created["delete_token"]})
    assert gone.status == 204
    assert (await fetch(server.http_port, "GET", "/" + created["key"])).status == 404


async def test_create_reports_what_redaction_masked(server):
    created = await create_json(server, b"build started\n" + SECRET_LINE, "?redact=1")
    assert created["redacted"] == 1
    stored = (await fetch(server.http_port, "GET", "/" + created["key"])).body
    assert stored == b"build started\nexport GITHUB_TOKEN=[REDACTED]\n"
    assert created["size"] == len(stored)


async def test_put_and_form_creates_answer_json_too(server):
    put = await fetch(server.http_port, "PUT", "/nightly-42", LOG, JSON)
    assert put.status == 201 and as_json(put)["key"] == "nightly-42"
    boundary = "xyzBOUNDARYxyz"
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.log\"\r\n\r\n"
    ).encode() + LOG + f"\r\n--{boundary}--\r\n".encode()
    posted = await fetch(server.http_port, "POST", "/", form,
                         {**JSON, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert posted.status == 201 and as_json(posted)["size"] == len(LOG)


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain", "text/html,application/xhtml+xml,*/*;q=0.8",
                                    "application/json;q=0.5, text/plain"])
async def test_without_a_json_accept_the_create_answer_is_todays_text(server, accept):
    headers = {} if accept is None else {"Accept": accept}
    reply = await fetch(server.http_port, "POST", "/", LOG, headers)
    assert reply.status == 201
    assert set(reply.headers) - {"date", "server"} == TEXT_CREATE_HEADERS
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body == (reply.headers["location"] + "\n").encode()


@pytest.mark.parametrize("accept", ["application/json", "application/json, text/plain;q=0.5", "Application/JSON"])
async def test_json_is_chosen_by_accept(server, accept):
    reply = await fetch(server.http_port, "POST", "/", LOG, {"Accept": accept})
    assert as_json(reply)["size"] == len(LOG)


# -- errors -------------------------------------------------------------------------------


async def same_error_both_ways(port: int, method: str, path: str, body: bytes | None = None,
                               headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
    """The request as text and as JSON: the same status and message."""
    text = await fetch(port, method, path, body, headers or {})
    answer = await fetch(port, method, path, body, {**(headers or {}), **JSON})
    assert answer.status == text.status >= 400
    document = as_json(answer)
    assert document == {"error": text.body.decode().removeprefix("error: ").removesuffix("\n"), "status": text.status}
    return text.status, document, answer.headers


async def test_every_error_class_answers_json(nursery, config, clock):
    server = await start_server(nursery, config, clock, max_paste_bytes=1000, pastes_per_minute=60)
    port = server.http_port
    status, error, _ = await same_error_both_ways(port, "POST", "/?expire=forever", LOG[:100])
    assert status == 400 and "expire" in error["error"]
    assert (await same_error_both_ways(port, "POST", "/", b""))[0] == 400
    assert (await same_error_both_ways(port, "GET", "/nosuchpaste"))[0] == 404
    status, _, headers = await same_error_both_ways(port, "PATCH", "/")
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    await fetch(port, "PUT", "/taken-name", b"first\n")
    assert (await same_error_both_ways(port, "PUT", "/taken-name", b"second\n"))[0] == 409
    assert (await same_error_both_ways(port, "POST", "/", b"x" * 2000))[0] == 413
    assert (await same_error_both_ways(port, "POST", "/", b"\x00\x01\x02 binary"))[0] == 415
    key = key_of((await fetch(port, "POST", "/", b"short\n")).body)
    status, _, headers = await same_error_both_ways(port, "GET", "/" + key, headers={"Range": "bytes=100-"})
    assert status == 416 and headers["content-range"] == "bytes */6"
    status, _, _ = await same_error_both_ways(port, "GET", "/" + key, headers={"X-Junk": "j" * 20_000})
    assert status == 431


async def test_rate_limit_answers_json_with_retry_after(nursery, config, clock):
    server = await start_server(nursery, config, clock, pastes_per_minute=1)
    assert (await fetch(server.http_port, "POST", "/", b"one\n")).status == 201
    refused = await fetch(server.http_port, "POST", "/", b"two\n", JSON)
    assert refused.status == 429
    error = as_json(refused)
    assert error["status"] == 429 and error["error"].startswith("rate limited")
    assert int(refused.headers["retry-after"]) >= 1


# -- ?meta --------------------------------------------------------------------------------


async def test_meta_tells_what_a_script_needs_and_never_the_token(server, clock):
    body = b"first\nsecond\nno newline at the end"
    created = await create_json(server, body, "?expire=2h")
    reply = await fetch(server.http_port, "GET", f"/{created['key']}?meta")
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    meta = as_json(reply)
    assert meta == {
        "key": created["key"],
        "url": created["url"],
        "size": len(body),
        "lines": 3,
        "created": iso_utc(clock(), millis=False),
        "expires": created["expires"],
        "state": "complete",
        "burn": False,
        "truncated": None,
    }
    token_hash = keys.token_hash(created["delete_token"])
    assert created["delete_token"].encode() not in reply.body and token_hash.hex().encode() not in reply.body
    head = await fetch(server.http_port, "HEAD", f"/{created['key']}?meta")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(reply.body))


async def test_meta_never_burns_a_burn_after_read_paste(server):
    created = await create_json(server, LOG, "?burn=1")
    for _ in range(3):
        meta = as_json(await fetch(server.http_port, "GET", f"/{created['key']}?meta"))
        assert meta["burn"] is True and meta["lines"] == 40
    assert (await fetch(server.http_port, "GET", "/" + created["key"])).body == LOG  # the one full read
    gone = await fetch(server.http_port, "GET", f"/{created['key']}?meta")  # no Accept: ?meta asks for JSON
    assert gone.status == 404 and as_json(gone) == {"error": "no such paste (it may have expired)", "status": 404}


async def test_meta_of_an_open_live_paste_counts_what_is_committed(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    line = b""
    with trio.fail_after(TEST_TIMEOUT_S):
        while not line.endswith(b"\n"):
            line += await stream.receive_some(1)
        key = key_of(line)
        await stream.send_all(b"one\ntwo\n")
        while True:  # committed in the next live group
            meta = as_json(await fetch(server.http_port, "GET", f"/{key}?meta"))
            if meta["size"] == 8:
                break
            await trio.sleep(0.05)
    assert (meta["state"], meta["lines"]) == ("open", 2)
    await stream.send_eof()
    with trio.fail_after(TEST_TIMEOUT_S):
        while (meta := as_json(await fetch(server.http_port, "GET", f"/{key}?meta")))["state"] == "open":
            await trio.sleep(0.05)
    assert (meta["state"], meta["size"], meta["lines"]) == ("complete", 8, 2)
    await stream.aclose()


async def test_meta_goes_alone_and_a_browser_gets_json_too(server):
    created = await create_json(server)
    mixed = await fetch(server.http_port, "GET", f"/{created['key']}?meta&tail=3", headers=JSON)
    assert mixed.status == 400 and "meta goes alone" in as_json(mixed)["error"]
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    assert as_json(await fetch(server.http_port, "GET", f"/{created['key']}?meta", headers=browser))["size"] == len(LOG)


async def test_netcat_and_plain_reads_are_unchanged(server):
    url = (await nc(server.tcp_port, LOG)).decode()
    assert url.count("\n") == 1 and url.startswith(f"http://127.0.0.1:{server.http_port}/")
    got = await fetch(server.http_port, "GET", "/" + key_of(url), headers=JSON)  # a read is the bytes, whatever Accept
    assert got.body == LOG and got.headers["content-type"] == "text/plain; charset=utf-8"


# -- the documented one-liners, with the real jq and curl -----------------------------------


async def test_the_readme_jq_one_liners_work(server, tmp_path):
    log = tmp_path / "build.log"
    log.write_bytes(LOG)
    base = f"http://127.0.0.1:{server.http_port}"

    def shell(command: str) -> str:
        return subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True,
                              timeout=TEST_TIMEOUT_S).stdout

    url = (await trio.to_thread.run_sync(
        shell, f"curl -s -H 'Accept: application/json' --data-binary @{log} {base}/ | jq -r .url")).strip()
    assert url.startswith(base + "/")
    assert (await fetch(server.http_port, "GET", "/" + key_of(url))).body == LOG
    lines = await trio.to_thread.run_sync(shell, f"curl -s '{url}?meta' | jq .lines")
    assert lines.strip() == "40"
    usage = (await fetch(server.http_port, "GET", "/")).body.decode()
    assert "jq -r .url" in usage and "?meta" in usage
