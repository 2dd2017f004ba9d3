"""Pieces of the self-contained HTML reports (segments, closed-loop simulation)."""

from __future__ import annotations

import base64
import io
from typing import Any


def png_tag(fig: Any) -> str:
    """A matplotlib figure as an inline ``<img>`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
