"""The exchange emulators on their own, through a plain aiohttp client: protocol, truth and faults.

(ccxt.pro against it is tested in tests/integration/exchange/test_exchange_source.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from fluxforge_common.kraken import kraken_book_checksum
from fluxforge_common.simulator import SimulatorConfig
from fluxforge_emulator import EmulatorConfig, ExchangeEmulator, starved
from fluxforge_emulator.feed import MarketFeed
from fluxforge_emulator.kraken import KrakenEmulator

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
# The most frames a test reads while waiting for a fault to show (~20 s of market at speed 5).
IN_FLIGHT_BOUND = 20_000


def config(**kw: Any) -> EmulatorConfig:
    sim = SimulatorConfig(seed=3, exchanges={"binanceus": SYMBOLS}, mean_events_per_second_per_symbol=200)
    return EmulatorConfig(simulator=sim, history_levels=10, **kw)


def run(body: Callable[[ExchangeEmulator, aiohttp.ClientSession], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with ExchangeEmulator(config(**kw)) as emu, aiohttp.ClientSession() as http:
            await body(emu, http)

    asyncio.run(main())


def apply(book: dict[float, float], levels: list[list[str]]) -> None:
    for price, qty in levels:
        if float(qty) == 0:
            book.pop(float(price), None)
        else:
            book[float(price)] = float(qty)


def top(bids: dict[float, float], asks: dict[float, float], n: int = 10) -> tuple[list[Any], list[Any]]:
    return sorted(bids.items(), reverse=True)[:n], sorted(asks.items())[:n]


def test_feed_is_the_simulators_market() -> None:
    feed = MarketFeed(SimulatorConfig(seed=3), "binanceus", history_levels=5)
    assert sorted(feed.symbols) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    steps = list(feed.step_until(feed.next_ts + 10_000, 10_000))
    assert steps, "ten seconds of market time made no step"
    kinds = {e.kind for _, events in steps for e in events}
    assert {"depth", "trade", "ticker"} <= kinds
    with pytest.raises(ValueError, match="no exchange"):
        MarketFeed(SimulatorConfig(), "nowhere")


@pytest.mark.parametrize("merge", [False, True])
def test_snapshot_plus_diffs_rebuild_the_true_book(merge: bool) -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url + "/0") as ws:
            await ws.send_str(
                orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}).decode()
            )
            assert orjson.loads((await ws.receive()).data) == {"result": None, "id": 1}
            async with http.get(emu.rest_url + "/depth", params={"symbol": "BTCUSDT", "limit": "100"}) as r:
                snap = await r.json()
            bids: dict[float, float] = {}
            asks: dict[float, float] = {}
            apply(bids, snap["bids"])
            apply(asks, snap["asks"])
            nonce = snap["lastUpdateId"]
            checked = 0
            while checked < 200:
                diff = orjson.loads((await ws.receive()).data)
                if diff["u"] <= nonce:
                    continue
                assert diff["U"] <= nonce + 1 <= diff["u"]
                if merge:
                    assert diff["U"] <= diff["u"]
                else:
                    assert diff["U"] == diff["u"]
                apply(bids, diff["b"])
                apply(asks, diff["a"])
                nonce = diff["u"]
                true_bids, true_asks = emu.true_book("BTC/USDT", nonce)
                assert top(bids, asks) == (true_bids, true_asks)
                checked += 1

    run(body, speed=5, merge_depth=merge)


def test_combined_stream_wraps_and_lists_subscriptions() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(f"{emu.base_url}/stream?streams=ethusdt@trade") as ws:
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":7}')
            # The URL subscribed already, so trades may come before the reply.
            early = []
            while "id" not in (reply := orjson.loads((await ws.receive(timeout=20)).data)):
                early.append(reply)
            assert reply == {"result": ["ethusdt@trade"], "id": 7}
            message = early[0] if early else orjson.loads((await ws.receive(timeout=20)).data)
            assert message["stream"] == "ethusdt@trade"
            assert message["data"]["e"] == "trade" and message["data"]["s"] == "ETHUSDT"
            await ws.send_str('{"method":"SUBSCRIBE","params":["nosuch@trade"],"id":8}')
            while "id" not in (reply := orjson.loads((await ws.receive()).data)):
                pass
            assert reply["error"]["code"] == 2

    run(body, speed=5)


async def text_frames(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[str]:
    """The frames a websocket receives, up to `IN_FLIGHT_BOUND`."""
    for _ in range(IN_FLIGHT_BOUND):
        yield (await ws.receive(timeout=10)).data


def test_gap_and_malformed_faults() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}')
            await ws.receive()
            last = orjson.loads((await ws.receive()).data)["u"]
            frames = text_frames(ws)
            # However many diffs a late loop left in flight, they arrive whole and in order first.
            emu.gap("BTC/USDT", 2)
            async for frame in frames:
                diff = orjson.loads(frame)
                if diff["U"] != last + 1:
                    break
                last = diff["u"]
            assert diff["U"] == last + 3  # two diffs never sent
            last = diff["u"]
            emu.malformed("BTC/USDT")
            async for frame in frames:
                try:
                    diff = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    break
                assert diff["U"] == last + 1
                last = diff["u"]
            assert orjson.loads(await anext(frames))["U"] == last + 2  # the next diff was the broken one
            assert emu.stats.dropped_depth == 2 and emu.stats.malformed == 1

    run(body, speed=5)


def test_burst_sends_seconds_of_market_back_to_back() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":1}')
            await ws.receive()
            first = orjson.loads((await ws.receive()).data)["T"]
            emu.burst(20)
            last = first
            while last < first + 20_000:  # 20 s of market time, at 200 events/s per symbol
                last = orjson.loads((await ws.receive(timeout=10)).data)["T"]
            # Sent back to back, not at their pace: their market times ran ahead of the wall clock.
            assert last > time.time() * 1000 + 10_000
            with pytest.raises(ValueError, match="positive"):
                emu.apply_fault({"kind": "burst", "seconds": 0})

    run(body)


def test_http_faults_and_weight_limit() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        emu.http_error(503, count=1, path="/depth")
        emu.http_error(429, count=1, retry_after_s=2)
        async with http.get(emu.rest_url + "/depth", params={"symbol": "BTCUSDT", "limit": "5"}) as r:
            assert r.status == 503
        async with http.get(emu.rest_url + "/exchangeInfo") as r:
            assert r.status == 429 and r.headers["Retry-After"] == "2"
        async with http.get(emu.rest_url + "/exchangeInfo") as r:
            assert r.status == 200 and len((await r.json())["symbols"]) == 2
        statuses = []
        for _ in range(3):  # weight 50 each against a limit of 120 per minute
            async with http.get(emu.rest_url + "/depth", params={"symbol": "BTCUSDT", "limit": "1000"}) as r:
                statuses.append(r.status)
        assert statuses == [200, 200, 429]
        assert emu.stats.rate_limited == 1

    run(body, weight_limit_per_minute=120)


def test_depth_lag_puts_snapshots_ahead_of_the_diffs_and_slow_snapshot_answers_late() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        depth = emu.rest_url + "/depth"
        params = {"symbol": "BTCUSDT", "limit": "5"}
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}')
            await ws.receive()
            last = orjson.loads((await ws.receive(timeout=10)).data)["u"]
            async with http.get(depth, params=params) as r:
                ahead = (await r.json())["lastUpdateId"]
            older = 0  # diffs received after the snapshot that it already holds: the stream trails
            async for frame in text_frames(ws):
                diff = orjson.loads(frame)
                assert diff["U"] == last + 1
                last = diff["u"]
                if last > ahead:
                    break
                older += 1
            # Off, about one diff is in flight; the 0.3 s lag (x speed 5, 200 events/s) holds ~30.
            assert older >= 10, older
        emu.apply_fault({"kind": "slow_snapshot", "symbol": "BTC/USDT", "seconds": 0.5})
        asked_at, asked = time.monotonic(), emu.feed.snapshot("BTCUSDT", 5)["lastUpdateId"]
        async with http.get(depth, params=params) as r:
            late = (await r.json())["lastUpdateId"]
        # Answered late, with the book as it was then, not when asked.
        assert time.monotonic() - asked_at >= 0.5 and late > asked
        assert emu.stats.slow_snapshots == 1
        for seconds, count in ((0, 1), (1, 0)):
            with pytest.raises(ValueError, match="a slow snapshot needs"):
                emu.slow_snapshot("BTC/USDT", seconds, count)

    run(body, speed=5, depth_lag_s=0.3)
    with pytest.raises(ValueError, match="depth_lag_s"):
        ExchangeEmulator(config(depth_lag_s=-1))
    kraken = EmulatorConfig(simulator=SimulatorConfig(exchanges={"kraken": SYMBOLS}), exchange="kraken")
    with pytest.raises(ValueError, match="in-band"):
        KrakenEmulator(replace(kraken, depth_lag_s=0.5))
    with pytest.raises(ValueError, match="in-band"):
        KrakenEmulator(kraken).slow_snapshot("BTC/USDT", 1.0)


def test_stall_silences_and_drop_cuts_connections() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url, autoping=False) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}')
            await ws.receive()
            await ws.receive()
            assert emu.stall() == 1
            await ws.ping()
            with pytest.raises(asyncio.TimeoutError):
                while True:  # frames already in flight may still arrive
                    msg = await ws.receive(timeout=0.5)
                    assert msg.type != aiohttp.WSMsgType.PONG
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}')
            await ws.receive()
            assert emu.drop_connections() >= 1
            msg = await ws.receive(timeout=5)
            while msg.type == aiohttp.WSMsgType.TEXT:
                msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)

    run(body, speed=5)


def test_rest_trade_history_serves_what_the_streams_sent() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@aggTrade"],"id":1}')
            await ws.receive()
            streamed: dict[str, list[dict[str, Any]]] = {"trade": [], "aggTrade": []}
            while len(streamed["aggTrade"]) < 20 or len(streamed["trade"]) < 20:
                event = orjson.loads((await ws.receive(timeout=10)).data)
                streamed[event["e"]].append(event)
        trades, aggs = streamed["trade"][:20], streamed["aggTrade"][:20]
        assert [(a["f"], a["p"], a["q"], a["T"], a["m"]) for a in aggs] == [
            (t["t"], t["p"], t["q"], t["T"], t["m"]) for t in trades
        ]
        assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[0]["a"] + 20))
        assert aggs[0]["a"] != trades[0]["t"]  # aggregate ids are not trade ids
        query = {"symbol": "BTCUSDT", "fromId": str(aggs[3]["a"]), "limit": "5"}
        async with http.get(emu.rest_url + "/aggTrades", params=query) as r:
            assert [{k: a[k] for k in ("a", "p", "q", "f", "T", "m")} for a in await r.json()] == [
                {k: a[k] for k in ("a", "p", "q", "f", "T", "m")} for a in aggs[3:8]
            ]
        query = {"symbol": "BTCUSDT", "fromId": str(trades[2]["t"]), "limit": "3"}
        async with http.get(emu.rest_url + "/historicalTrades", params=query) as r:
            assert [(t["id"], t["price"], t["time"]) for t in await r.json()] == [
                (t["t"], t["p"], t["T"]) for t in trades[2:5]
            ]
        async with http.get(emu.rest_url + "/aggTrades", params={"symbol": "NOPE"}) as r:
            assert r.status == 400

    run(body, speed=5)


def test_disconnect_cuts_and_refuses_websockets_while_rest_and_the_market_go_on() -> None:
    async def body(emu: ExchangeEmulator, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(emu.ws_url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
            await ws.receive()
            assert emu.apply_fault({"kind": "disconnect", "seconds": 1.0}) == 1
        trades_before = emu.stats.trades
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(emu.ws_url)
        assert refused.value.status == 503
        async with http.get(emu.rest_url + "/trades", params={"symbol": "BTCUSDT", "limit": "1"}) as r:
            assert r.status == 200
        await asyncio.sleep(1.1)
        assert emu.stats.trades > trades_before  # the market traded on during the outage
        async with http.ws_connect(emu.ws_url):
            pass

    run(body, speed=5)


def test_kraken_rest_trades_since_a_time() -> None:
    async def main() -> None:
        sim = SimulatorConfig(seed=3, exchanges={"kraken": SYMBOLS}, mean_events_per_second_per_symbol=200)
        async with KrakenEmulator(EmulatorConfig(simulator=sim, exchange="kraken", speed=5)) as emu:
            await asyncio.sleep(1.0)
            kept = list(emu.feed.symbol("BTC/USDT").trades)
            assert len(kept) > 10
            since = kept[5].ts / 1000
            async with aiohttp.ClientSession() as http:
                params = {"pair": "BTCUSDT", "since": str(since), "count": "4"}
                async with http.get(f"{emu.base_url}/0/public/Trades", params=params) as r:
                    result = (await r.json())["result"]
        rows = result["BTCUSDT"]
        assert [row[6] for row in rows] == [t.id for t in kept[5:9]]
        assert [(float(row[0]), row[3]) for row in rows] == [
            (t.price, "s" if t.buyer_is_maker else "b") for t in kept[5:9]
        ]
        assert result["last"] == str(kept[8].ts * 1_000_000)

    asyncio.run(main())


def test_starve_holds_the_loop_for_its_share_of_each_period() -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        async with starved(0.9, period_s=0.1):
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(0)  # the co-task starts: nothing else runs while it holds the loop for 90 ms
            assert time.perf_counter() - started >= 0.09
            # It takes the loop, not a core (which would starve an emulator in another thread too).
            assert time.process_time() - cpu < 0.045
        with pytest.raises(ValueError, match="share"):
            async with starved(1.0):
                pass

    asyncio.run(main())


def test_kraken_gap_always_fails_the_clients_next_checksums() -> None:
    """A skipped update may change only levels the next update sends again, which leaves the client's
    book true: the emulator then skips more, so every gap is one a client can detect."""

    async def main() -> None:
        sim = SimulatorConfig(seed=3, exchanges={"kraken": SYMBOLS}, mean_events_per_second_per_symbol=200)
        async with (
            KrakenEmulator(EmulatorConfig(simulator=sim, exchange="kraken", speed=5)) as emu,
            aiohttp.ClientSession() as http,
            http.ws_connect(emu.ws_url) as ws,
        ):
            assert isinstance(emu, KrakenEmulator)
            decimals = emu.pair_decimals(emu.feed.symbol("BTC/USDT"))
            params = {"channel": "book", "symbol": ["BTC/USDT"], "depth": 10}
            frames = text_frames(ws)
            for _ in range(12):
                await ws.send_str(orjson.dumps({"method": "subscribe", "params": params}).decode())
                bids: dict[float, float] = {}
                asks: dict[float, float] = {}
                snapshot, updates_after_gap = False, None
                async for frame in frames:
                    message = orjson.loads(frame)
                    snapshot = snapshot or message.get("type") == "snapshot"
                    if message.get("channel") != "book" or not snapshot:
                        continue  # not yet this subscription's (updates of the last may still arrive)
                    book = message["data"][0]
                    apply(bids, [[level["price"], level["qty"]] for level in book["bids"]])
                    apply(asks, [[level["price"], level["qty"]] for level in book["asks"]])
                    best_bids, best_asks = top(bids, asks)
                    if kraken_book_checksum(best_asks, best_bids, *decimals) != book["checksum"]:
                        break
                    assert updates_after_gap is None or updates_after_gap < 1000, "the gap never showed"
                    if updates_after_gap is None and message["type"] == "update":
                        updates_after_gap = 0
                        emu.gap("BTC/USDT")
                    elif updates_after_gap is not None:
                        updates_after_gap += 1
                else:
                    pytest.fail("the connection closed")
                await ws.send_str(orjson.dumps({"method": "unsubscribe", "params": params}).decode())
            assert emu.stats.dropped_depth >= 12

    asyncio.run(main())
