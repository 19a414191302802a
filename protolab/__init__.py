"""protolab: compare application protocols, with real stacks, over an emulated network."""

__version__ = "0.1.0"
