"""One instrumented client per protocol, all behind `clients.base.ProtocolClient`."""
