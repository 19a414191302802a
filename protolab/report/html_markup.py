"""The markup every table of the HTML report is made of: escaped text, numbers with their
exact sort key, cells, sortable tables (html_page.py's script sorts them), and the sort
key and unit of a link parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def num_text(value: float | None, digits: int | None = None) -> tuple[str, str]:
    """(shown text, sort key) of a number; '-' and an empty key for none."""
    if value is None:
        return "-", ""
    if digits is None:
        digits = 1 if abs(value) >= 10 else 2
    return f"{value:.{digits}f}", repr(float(value))


def td(text: str, key: str | None = None, cls: str = "") -> str:
    attrs = (f' data-v="{esc(key)}"' if key is not None else "") + (
        f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{text}</td>"


def num_td(value: float | None, digits: int | None = None, cls: str = "num") -> str:
    text, key = num_text(value, digits)
    return td(text, key, cls)


def sortable_table(table_id: str, caption: str, headers: Sequence[tuple[str, str, str]],
                   rows: Sequence[str]) -> str:
    """A sortable table; headers are (label, type num|text, tooltip)."""
    heads = "".join(
        f'<th scope="col" data-type="{kind}" title="{esc(tip or "click to sort")}">'
        f"{esc(label)}</th>" for label, kind, tip in headers)
    return (f'<div class="scroll"><table class="sortable" id="{table_id}">'
            f"<caption>{caption}</caption><thead><tr>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


# What each link parameter's value is in, for the column headers of swept parameters.
LINK_UNITS = {"delay": "one-way", "loss": "%", "rate": "bit/s", "jitter": "ms",
              "queue": "packets", "burst": "length", "drop": "packet list", "reorder": "on/off",
              "seed": "seed"}


def link_sort_key(text: str) -> str:
    """A sort key for link words: their leading number when they have one (50ms, 2%)."""
    head = ""
    for ch in text.strip():
        if ch.isdigit() or ch in ".-" and not head.count(ch):
            head += ch
        else:
            break
    try:
        return repr(float(head))
    except ValueError:
        return text
