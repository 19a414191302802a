"""The commands that sit above every layer: they parse options, call the layers, print."""
