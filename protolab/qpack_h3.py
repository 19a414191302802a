"""aioquic's `H3Connection` with the QPACK table capacity as a setting (protolab/qpack.py).

`H3Connection.__init__` fixes the capacity at 4096, builds its pylsqpack decoder with
it and, at its end, sends its SETTINGS (`_init_connection`). The subclass sets both the
decoder's capacity and the number it announces just before that, so the SETTINGS on the
wire and the decoder always agree; the peer's encoder learns it from those SETTINGS
(aioquic applies them in `_handle_control_frame`). Used by the lab's HTTP/3 client and
server alike.
"""

from __future__ import annotations

import pylsqpack
from aioquic.h3.connection import H3Connection
from aioquic.quic.connection import QuicConnection

from protolab.errors import ConfigError
from protolab.qpack import DEFAULT_TABLE, check_table


class TableH3Connection(H3Connection):
    """An `H3Connection` whose decoder offers the peer a dynamic table of `qpack_table`
    bytes (0: none, RFC 9204 §3.2.3)."""

    def __init__(self, quic: QuicConnection, *, qpack_table: int = DEFAULT_TABLE) -> None:
        if (why := check_table(qpack_table)) is not None:
            raise ConfigError(why)
        self._lab_table = qpack_table
        super().__init__(quic)

    def _init_connection(self) -> None:
        # Called at the end of H3Connection.__init__, before any SETTINGS leave.
        self._max_table_capacity = self._lab_table
        self._decoder = pylsqpack.Decoder(self._lab_table, self._blocked_streams)
        super()._init_connection()
