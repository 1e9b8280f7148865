"""``to_pandas`` for every store: the pandas view lives in ``traffic_lab.frames``, loaded on use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PandasViews"]


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
