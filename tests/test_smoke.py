from conftest import fetch, key_of, nc


async def test_netcat_roundtrip(server):
    reply = await nc(server.tcp_port, b"hello\n")
    assert reply.startswith(f"http://127.0.0.1:{server.http_port}/".encode())
    got = await fetch(server.http_port, "GET", "/" + key_of(reply))
    assert got.status == 200 and got.body == b"hello\n"
