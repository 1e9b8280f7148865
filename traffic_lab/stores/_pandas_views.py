"""Views every store shares: ``to_pandas`` (pandas loads on use) and a stream's replay views."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from ..exchange import Exchange

__all__ = ["PandasViews", "ReplayViews"]


class PandasViews:
    """Gives a store ``to_pandas``; pandas and pyarrow load only when it is called."""

    __slots__ = ()

    def to_pandas(
        self,
        columns: Any = None,
        where: Any = None,
        bodies: bool = False,
        *,
        headers: bool = False,
    ) -> pd.DataFrame:
        """This store's exchanges as a DataFrame (see :func:`traffic_lab.frames.to_pandas`).

        Needs pandas; ``where=`` takes a :class:`~traffic_lab.frames.Where`, a dict of its
        fields or a ``pyarrow.compute`` Expression.
        """
        from ..frames import to_pandas

        return to_pandas(self, columns, where, bodies, headers=headers)


class ReplayViews(PandasViews):
    """``requests()`` and ``responses()`` of a stream, from its ``exchanges()``."""

    __slots__ = ()

    def exchanges(self) -> Iterator[Exchange]:
        raise NotImplementedError

    def requests(self) -> Iterator[httpx.Request]:
        """The recorded requests, in order."""
        return (exchange.request for exchange in self.exchanges())

    def responses(self) -> Iterator[httpx.Response]:
        """The recorded responses (read, decoded), in order.

        Raises the recorded transport error again on reaching an exchange that failed.
        """
        for exchange in self.exchanges():
            response = exchange.response
            if response is None:
                assert exchange.error is not None
                raise exchange.error.to_exception(exchange.request)
            yield response
