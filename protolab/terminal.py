"""The lab's terminal consoles: text is printed as it is, never read as rich markup.

Messages carry user input (a profile string, a file name, a suite key such as `[link]`);
read as markup, `[...]` in them disappears or raises a MarkupError, and read for emoji
codes, a suite named `a:x:b` or the address `fd00:77:0:X::1` shows an emoji. Styling is
given as a style, not written into the text.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def make_console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False,
                   soft_wrap=soft_wrap)


def styled(text: str, style: str) -> Text:
    """`text` shown in `style`, with no markup read from it."""
    return Text(text, style=style)


def print_error(console: Console, message: str) -> None:
    """One line: `error: MESSAGE`, the message verbatim."""
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
