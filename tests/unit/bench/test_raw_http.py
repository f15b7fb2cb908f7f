"""The benchmarks' load generator speaks enough HTTP/1.1: keep-alive, Content-Length and chunked
answers, and a fresh connection when the server closed an idle one."""

from __future__ import annotations

import asyncio

from bench._common import RawHttpClient


async def test_keep_alive_chunked_and_reconnect() -> None:
    seen: list[tuple[str, bytes]] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            body = await reader.readexactly(length)
            seen.append((head.split(" ")[1], body))
            if body == b"chunked":
                writer.write(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")  # fmt: skip
            elif body == b"bye":
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                writer.close()  # as a keep-alive timeout would, after answering
                return
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RawHttpClient(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t"})
    try:
        first = await client.post("/write", b"a=1", {"db": "x y"})
        assert (first.status, first.body, first.headers["retry-after"]) == (200, b"ok", "3")
        chunked = await client.post("/write", b"chunked")
        assert (chunked.status, chunked.body) == (400, b"hello world")
        assert connections == 1  # both on one kept-alive connection
        assert (await client.post("/write", b"bye")).status == 204
        await asyncio.sleep(0.05)
        assert (await client.post("/write", b"again")).body == b"ok"  # reconnected
        assert connections == 2
        assert seen[0] == ("/write?db=x+y", b"a=1")
    finally:
        client.close()
        server.close()
        await server.wait_closed()
