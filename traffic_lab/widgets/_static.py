"""What the widgets' pages share: their style sheets (``static/``: the palette in ``theme.css``
first, then each widget's own), and the static snapshot each puts in its display bundle."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

#: The front-end files shipped inside the package (ES modules and style sheets).
STATIC = Path(__file__).parent / "static"


@cache
def widget_css(*names: str) -> str:
    """The palette (``theme.css``) and the style sheets ``static/<name>.css``, as one text."""
    parts = ["theme", *names]
    return "\n".join((STATIC / f"{name}.css").read_text(encoding="utf-8") for name in parts)


class StaticSnapshot:
    """A widget whose display bundle carries, beside its live view, a static HTML snapshot
    (``text/html`` from ``snapshot_html()``) for where no kernel runs: nbconvert, a saved page,
    a viewer without the widget's front end."""

    def snapshot_html(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is not None:
            data["text/html"] = self.snapshot_html()
        return bundle
