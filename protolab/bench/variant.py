"""A suite's variant: one protocol with its knobs, checked where a suite file gives it.

The knobs are the catalogue's (`protolab.knobs.Knobs`: defaults, allowed values); which
of them a protocol's client and server take, and what it refuses, is the registry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protolab import registry
from protolab.bench.tables import check_keys, check_value
from protolab.errors import ConfigError
from protolab.knobs import KNOB_DEFAULTS, SERVER_KNOBS, Knobs, knob_values
from protolab.registry import ProtocolSpec


@dataclass(frozen=True, kw_only=True)
class Variant(Knobs):
    """One protocol with its settings, a cell's "what runs" beside its link."""

    label: str  # the suite's name for it, unique in the suite
    protocol: str  # a registry name

    @property
    def spec(self) -> ProtocolSpec:
        return registry.get(self.protocol)

    def server_key(self) -> tuple[Any, ...]:
        """Variants with equal keys can share one server process."""
        return (*(getattr(self, k) for k in SERVER_KNOBS), self.spec.server_group)

    def client_options(self) -> dict[str, Any]:
        return self.spec.client_options(self.knobs())

    @property
    def primes(self) -> bool:
        """Needs a priming connection so the measured one can resume."""
        return self.spec.primes(self.knobs())

    def to_json(self) -> dict[str, Any]:
        """Flat: label, protocol, then every knob (stored runs and the Dask wire read it)."""
        return {"label": self.label, "protocol": self.protocol, **self.knobs()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        return parse_variant(data, "variant")


def parse_variant(table: Any, where: str) -> Variant:
    """A `[[variant]]` table: its keys, each knob's value against the catalogue, then what
    the protocol refuses — each mistake one ConfigError naming `where`."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    check_keys(table, where, {"label", "protocol", *KNOB_DEFAULTS})
    protocol = check_value(table, "protocol", str, where, "")
    if protocol not in registry.PROTOCOLS:
        raise ConfigError(f"{where}: unknown protocol {protocol!r}",
                          hint=f"choose one of {', '.join(registry.NAMES)}")
    variant = Variant(label=check_value(table, "label", str, where, protocol),
                      protocol=protocol, **knob_values(table, where))
    problems = variant.spec.validate(variant.knobs())
    if problems:
        raise ConfigError(f"{where}: {problems[0]}")
    return variant
