"""What the collector's command-line options are and say, apart from `launch`.

`fluxforge run` offers the same source options; importing `launch` for their texts would load
the Kafka clients into every embedded run's start-up.
"""

from __future__ import annotations

from typing import Literal

SourceKind = Literal["simulator", "file", "exchange"]

HELP = {
    "source": "Where ticks come from: 'simulator' (the simulated market), 'file' (--input) or 'exchange' "
    "(--exchange, live through ccxt.pro) (default: exchange with --exchange, file with --input, else simulator).",
    "exchange": "Record this exchange live through ccxt.pro: its key under `exchanges:` in the config "
    "(symbols, channels, options, urls). API keys, if any, come from FLUXFORGE_<EXCHANGE>_API_KEY/_SECRET "
    "or FLUXFORGE_<EXCHANGE>_CREDENTIALS_FILE, never from the config file.",
    "input": "For --source file: raw NDJSON file (.ndjson or .ndjson.zst), '-' for stdin, "
    "or a dataset root whose raw/ archive to publish in ingest order.",
    "date": "With a dataset root as --input: publish only this UTC date of the archive (YYYY-MM-DD).",
    "start_date": "With a dataset root as --input: first UTC date of a range of the archive.",
    "end_date": "Last UTC date of the --start-date range, inclusive.",
    "events": "Stop after this many input lines (accepted or dead-lettered).",
    "duration": "Stop after this many seconds of market (event) time, counted from the first accepted tick.",
    "realtime": "Pace the input in real time: each tick is published when the wall clock reaches its "
    "recv_ts offset from the first tick (default: as fast as the broker takes them).",
    "speed": "Pace at this multiple of real time (e.g. 10 = ten times faster); implies --realtime.",
    "bootstrap": "Kafka bootstrap servers, host:port[,host:port] (overrides kafka.bootstrap_servers).",
}
