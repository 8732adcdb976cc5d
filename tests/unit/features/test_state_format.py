"""Stored symbol states keep their bytes across the native kernel: a Faust table written before it
still restores, and a state written now is what the code before it wrote."""

from __future__ import annotations

import orjson
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState
from fluxforge_common.messages import DecodedTick, decode_tick

CFG = StateConfig(
    max_levels=3, ofi_levels=2, horizons=(1, 2), bar_durations=(1,), regime_window=2, allowed_lateness_ms=250
)
T = 1_765_497_600_000
# What `SymbolState.to_bytes` gave for `_ticks()` before the native kernel (commit 9c570e1):
# three held books, two emitted intervals, OFI over two levels, a trade of each side.
BEFORE = bytes.fromhex(
    "dc001605b038613938633037326537383239353031a26578a3412f429392cb4059200000000000cb401180000000000092cb"
    "4059000000000000cb400200000000000092cb4058e00000000000cb40080000000000009292cb4059400000000000cb4021"
    "80000000000092cb4059500000000000cb3ff8000000000000cb4059300000000000cf0000019b0fdb828c1dcf0000019b0f"
    "db8354cf0000019b0fdb7a8acf0000019b0fdb8386cf0000019b0fdb83b8c0cb4059500000000000cb000000000000000092"
    "a27431a27432dc0014cb0000000000000000cb4017a00000000000cb4032900000000000cb4059100000000000cb40595000"
    "00000000cb4059300000000000cb4059100000000000cb3fe0000000000000cb3fe0000000000000080000cb000000000000"
    "000092cb4047c00000000000cb402e000000000000cb3f19d373f179c6d6cb3f21c36f22df1c28cb0000000000000000cbc0"
    "05555555555555cb3fa458c0ea8782bbcb40100000000000009992cb3fe8000000000000cb000000000000000092cb402734"
    "0000000000cb402734000000000092cb4026e00000000000cb402e600000000000920a0a92000092cb4040200000000000cb"
    "4049f0000000000092cb0000000000000000cb3f19d373f179c6d692cb3f235e9a36d58c55cb3f235e9a36d58c5592cb0000"
    "000000000000cb0000000000000000919fcb0000000000000000cbfff0000000000000cb7ff0000000000000cbfff0000000"
    "000000cb7ff00000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000"
    "cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000c501da9388a474797065a4626f6f"
    "6ba865786368616e6765a26578a673796d626f6ca3412f42a7726563765f7473cf0000019b0fdb82f3a27473cf0000019b0f"
    "db82f0a4626964739392cb4059300000000000cb401200000000000092cb4059100000000000cb400200000000000092cb40"
    "58f00000000000cb4008000000000000a461736b739292cb4059500000000000cb402200000000000092cb40596000000000"
    "00cb3ff8000000000000a37365711c88a474797065a4626f6f6ba865786368616e6765a26578a673796d626f6ca3412f42a7"
    "726563765f7473cf0000019b0fdb8357a27473cf0000019b0fdb8354a4626964739392cb4059400000000000cb4012800000"
    "00000092cb4059200000000000cb400200000000000092cb4059000000000000cb4008000000000000a461736b739292cb40"
    "59600000000000cb402280000000000092cb4059700000000000cb3ff8000000000000a37365711d8aa474797065a5747261"
    "6465a865786368616e6765a26578a673796d626f6ca3412f42a7726563765f7473cf0000019b0fdb8387a27473cf0000019b"
    "0fdb8386a57072696365cb4059400000000000a6616d6f756e74cb3fe0000000000000a473696465a473656c6ca26964a274"
    "32aa6261636b66696c6c6564c2c3"
)


def _book(i: int) -> bytes:
    bid, size = 100 + 0.25 * (i % 5), 1.0 + i / 8
    return orjson.dumps(
        {
            "type": "book", "exchange": "ex", "symbol": "A/B", "ts": T + 100 * i, "recv_ts": T + 100 * i + 3,
            "seq": i, "bids": [[bid, size], [bid - 0.5, 2.25], [bid - 1, 3]],
            "asks": [[bid + 0.5, size * 2], [bid + 0.75, 1.5]],
        }
    )  # fmt: skip


def _trade(ms: int, price: float, amount: float, side: str, trade_id: str) -> bytes:
    return orjson.dumps(
        {
            "type": "trade", "exchange": "ex", "symbol": "A/B", "ts": T + ms, "recv_ts": T + ms + 1,
            "price": price, "amount": amount, "side": side, "id": trade_id,
        }
    )  # fmt: skip


def _ticks() -> list[bytes]:
    lines = [_book(i) for i in range(30)]
    lines.insert(7, _trade(650, 100.5, 0.75, "buy", "t1"))
    lines.append(_trade(2950, 101.0, 0.5, "sell", "t2"))
    return lines


def test_a_state_is_written_as_before_and_one_written_before_restores_to_the_same_bytes() -> None:
    engine, out = FeatureEngine(CFG), EngineOutput()
    for line in _ticks():
        item = decode_tick(line)
        assert isinstance(item, DecodedTick)
        engine.process(item, out)
    state = engine.state_for("ex", "A/B")
    assert len(state.held) == 3 and len(out.hf) == 2
    assert state.to_bytes() == BEFORE
    assert SymbolState.from_bytes(BEFORE, CFG).to_bytes() == BEFORE
