"""Head-of-line delay per stream, measured and attributed to the loss that caused it.

`analyse_capture(folder, records)` reads one cell repetition's capture (the link's
pcapng with its drops, the TLS/QUIC key log) and that repetition's records, and says for
every byte range of every stream when it crossed the link, when the application got it,
and which dropped packet held it - own loss or another stream's (DESIGN.md, "Head-of-line
delay, measured not inferred"). Modules: `model` (what it finds), `intervals` (first
arrivals of an ordered byte space), `h2` (TCP -> TLS records -> HTTP/2 DATA), `h3` (QUIC
packets -> STREAM frames -> HTTP/3 DATA), `analyse` (clock alignment, causes, summaries),
`cell` (per-cell metrics).
"""

from protolab.hol.analyse import analyse, analyse_capture, attribute
from protolab.hol.model import CAUSES, Cause, Drop, HolResult, Piece, StreamHol

__all__ = ["CAUSES", "Cause", "Drop", "HolResult", "Piece", "StreamHol", "analyse",
           "analyse_capture", "attribute"]
