"""`fluxforge-emulator` (or `python -m fluxforge_emulator`): run the Binance (or, with `--protocol kraken`, Kraken) emulator.

Prints one JSON line on stdout once listening: its URLs and the `urls` and
`options` to put under `exchanges.<name>` so ccxt talks to it. Faults:
`curl -X POST <base>/_emulator/fault -d '{"kind": "gap", "symbol": "BTC/USDT"}'`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import orjson
import uvloop
from fluxforge_common.simulator import SimulatorConfig

from fluxforge_emulator.kraken import KrakenEmulator
from fluxforge_emulator.server import EmulatorConfig, ExchangeEmulator

PROTOCOLS: dict[str, type[ExchangeEmulator]] = {"binance": ExchangeEmulator, "kraken": KrakenEmulator}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fluxforge-emulator", description=__doc__)
    p.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), default="binance", help="Which exchange's API to speak."
    )
    p.add_argument(
        "--exchange", help="Exchange name in the simulator config (default: binanceus, or kraken for Kraken)."
    )
    p.add_argument("--symbols", help="Comma-separated unified symbols (default: the simulator's).")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--rate", type=float, default=20.0, help="Mean events per second per symbol (market time)."
    )
    p.add_argument("--speed", type=float, default=1.0, help="Market seconds per wall second.")
    p.add_argument("--merge-depth", action="store_true", help="One diff per symbol per driver period.")
    p.add_argument(
        "--depth-lag",
        type=float,
        default=0.0,
        help="Seconds the websocket depth diffs trail the book (REST snapshots do not): Binance only.",
    )
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument(
        "--compress", action="store_true", help="Accept permessage-deflate when the client offers it."
    )
    p.add_argument("--port", type=int, default=0)
    return p


async def _serve(config: EmulatorConfig, protocol: type[ExchangeEmulator]) -> None:
    emulator = protocol(config)
    await emulator.start()
    info = {
        "rest": emulator.rest_url,
        "ws": emulator.ws_url,
        "control": f"{emulator.base_url}/_emulator",
        "urls": emulator.ccxt_urls(),
        "options": emulator.ccxt_options(),
    }
    sys.stdout.write(orjson.dumps(info).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exchange = args.exchange or ("kraken" if args.protocol == "kraken" else "binanceus")
    sim = SimulatorConfig(seed=args.seed, mean_events_per_second_per_symbol=args.rate)
    if args.symbols:
        sim = sim.model_copy(update={"exchanges": {exchange: args.symbols.split(",")}})
    config = EmulatorConfig(
        simulator=sim,
        exchange=exchange,
        speed=args.speed,
        merge_depth=args.merge_depth,
        depth_lag_s=args.depth_lag,
        ping_interval_s=args.ping_interval,
        compress=args.compress,
        port=args.port,
    )
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(config, PROTOCOLS[args.protocol]))
