from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar, overload

_Book = TypeVar("_Book")

class BookDecoder(Generic[_Book]):
    def __init__(self, book_type: type[_Book]) -> None: ...
    def decode(self, raw: bytes) -> _Book | None: ...

class Levels:
    @staticmethod
    def from_json(raw: bytes | memoryview, path: str) -> Levels: ...
    @staticmethod
    def from_pairs(pairs: Iterable[Sequence[float]]) -> Levels: ...
    def pairs(self) -> list[tuple[float, float]]: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int) -> tuple[float, float]: ...
    @overload
    def __getitem__(self, index: slice) -> Levels: ...
    def __iter__(self) -> Iterator[tuple[float, float]]: ...
    def __eq__(self, other: object) -> bool: ...

class IntervalFlows:
    buy_qty: float
    depth_m2: float
    depth_mean: float
    first_mid: float
    high: float
    last_mid: float
    low: float
    max_spread: float
    min_spread: float
    n: int
    n_tight: int
    n_trades: int
    notional: float
    @property
    def ofi(self) -> list[float]: ...
    r2_cross: float
    r2_in: float
    sell_qty: float
    sum_imb: float
    sum_rel: float
    sum_spread: float
    def __init__(self, ofi_levels: int) -> None: ...
    def reset(self) -> None: ...
    def on_book(
        self,
        bids: Levels,
        asks: Levels,
        prev_bids: Levels | None,
        prev_asks: Levels | None,
        prev_mid: float,
        tight_spread: float,
    ) -> float: ...
    def on_trade(self, price: float, amount: float, buy: bool) -> None: ...
    def to_state(self) -> list[object]: ...
    def load_state(self, values: list[object]) -> None: ...

def book_ok(bids: Levels, asks: Levels, low: float, high: float) -> bool: ...
