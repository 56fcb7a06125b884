import asyncio
import ssl

import trustme

from harness.faults import FaultProxy, Tap

MARKER = b"PLAINTEXT-MARKER-7f3a"


async def _tls_echo_server(ip, ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(ip).configure_cert(context)

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, ip, 0, ssl=context)


async def test_tap_sees_a_handshake_and_never_the_marker_inside_tls(loopback_ip):
    ca = trustme.CA()
    server = await _tls_echo_server(loopback_ip, ca)
    try:
        async with FaultProxy((loopback_ip, 0), server.sockets[0].getsockname()[:2]) as proxy:
            tap = proxy.tap()
            client = ssl.create_default_context()
            ca.configure_trust(client)
            reader, writer = await asyncio.open_connection(*proxy.address, ssl=client,
                                                           server_hostname=loopback_ip)
            writer.write(MARKER)
            assert await reader.readexactly(len(MARKER)) == MARKER  # it did cross the hop
            writer.close()
            assert tap.saw_tls_handshake() and tap.all_tls()
            assert not tap.contains(MARKER)
            assert tap.streams("downstream")[0][0] == 0x16  # ServerHello is a handshake record too
    finally:
        server.close()
        await server.wait_closed()


async def test_tap_sees_plaintext(proxy):
    tap = proxy.tap()
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"GET / HTTP/1.1\r\n" + MARKER)
    await reader.readexactly(16 + len(MARKER))
    writer.close()
    assert tap.contains(MARKER, "upstream") and tap.contains(MARKER, "downstream")
    assert not tap.saw_tls_handshake() and not tap.all_tls()


async def test_tap_keeps_connections_apart_and_respects_its_limit(proxy):
    tap = proxy.tap(limit_bytes=1000)
    for half in (b"MARK", b"ER"):  # a marker split over two connections is not a match
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(half)
        await reader.readexactly(len(half))
        writer.close()
    assert not tap.contains(b"MARKER")
    assert tap.streams("upstream") == [b"MARK", b"ER"]
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(b"z" * 5000)
    await reader.readexactly(5000)
    writer.close()
    assert tap.recorded_bytes == 1000 and tap.truncated
    tap.clear()
    assert tap.streams() == [] and not tap.truncated


def test_a_tls_record_that_is_not_a_client_hello_does_not_count():
    tap = Tap()
    tap._record(1, "upstream", bytes([0x16, 0x03, 0x01, 0x00, 0x10, 0x02]))  # a ServerHello
    assert not tap.saw_tls_handshake()
    tap._record(2, "upstream", bytes([0x16, 0x03, 0x01, 0x00, 0x10, 0x01]))
    assert tap.saw_tls_handshake()
