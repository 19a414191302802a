"""The `qpack_table` knob (protolab/qpack.py): the QPACK dynamic table each HTTP/3
decoder offers its peer. With 0 the peer may only use the static table and literals, so
repeated headers cost the same bytes on every request; with a table they shrink to
indexes after the first — measured on the wire, on real QUIC connections."""

from __future__ import annotations

import pytest

from protolab.bench.suite import parse_suite
from protolab.core.record import Request, RequestRecord, Target
from protolab.errors import ConfigError
from protolab.registry import make_client
from servers.common import H3Settings, ServerConfig
from tests.conftest import ServerFactory
from tests.helpers import target_for

HEADERS = (
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/126.0.0.0 Safari/537.36"),
    ("accept-language", "en-GB,en;q=0.9,de;q=0.8,fr;q=0.7"),
    ("cookie", "session=6f1c2a9e8b7d4c3a2f1e0d9c8b7a6f5e; theme=dark; consent=analytics"),
)
COUNT = 8


async def requests(lab_server: ServerFactory, server_table: int, client_table: int,
                   ) -> list[RequestRecord]:
    async with lab_server(h3=H3Settings(qpack_table=server_table)) as running:
        client = make_client("h3", target_for(running, "h3"), qpack_table=client_table)
        try:
            records = [await client.request(Request(path="/bytes/100", headers=HEADERS))
                       for _ in range(COUNT)]
        finally:
            await client.close()
    for record in records:
        assert record.ok, record.error_detail
    assert not any(r.new_connection for r in records[1:])  # one connection throughout
    return records


def _udp_sent(records: list[RequestRecord]) -> int:
    """UDP payload bytes the client sent after the first request, until the last."""
    return records[-1].transport["udp_bytes_sent"] - records[0].transport["udp_bytes_sent"]


@pytest.mark.asyncio
async def test_a_server_without_a_dynamic_table_gets_every_header_in_full(
    lab_server: ServerFactory,
) -> None:
    table = await requests(lab_server, 4096, 4096)
    static = await requests(lab_server, 0, 4096)
    # The request stream: literals every time without a table, indexes with one.
    assert len({r.bytes_out for r in static}) == 1
    assert static[0].bytes_out > 150  # the three fields, as literals
    assert all(r.bytes_out < 0.2 * static[0].bytes_out for r in table[1:])
    # On the wire (UDP, encoder stream and ACKs included): far more without a table.
    assert _udp_sent(static) > _udp_sent(table) + (COUNT - 1) * 100


@pytest.mark.asyncio
async def test_a_client_without_a_dynamic_table_gets_response_headers_in_full(
    lab_server: ServerFactory,
) -> None:
    table = await requests(lab_server, 4096, 4096)
    static = await requests(lab_server, 4096, 0)
    assert len({r.bytes_in for r in static}) == 1  # the same response bytes every time
    assert all(r.bytes_in < static[0].bytes_in for r in table[1:])  # indexed after the first


@pytest.mark.parametrize("value", [-1, 1 << 21, True])
def test_a_bad_table_capacity_is_one_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="qpack_table must be an integer"):
        H3Settings(qpack_table=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="qpack_table must be an integer"):
        make_client("h3", Target("127.0.0.1", 1), qpack_table=value)


def test_the_knob_is_h3s_and_crosses_the_process_boundary() -> None:
    suite = parse_suite({"variant": [{"label": "h3-static", "protocol": "h3",
                                      "qpack_table": 0}]}, "t")
    (variant,) = suite.variants
    assert variant.client_options()["qpack_table"] == 0
    with pytest.raises(ConfigError, match="qpack_table is HTTP/3's"):
        parse_suite({"variant": [{"protocol": "h2", "qpack_table": 0}]}, "t")
    config = ServerConfig(h3=H3Settings(qpack_table=0))
    assert ServerConfig.from_json(config.to_json()).h3.qpack_table == 0
