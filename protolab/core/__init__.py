"""The lab's centre: the measurement vocabulary, the one latency definition, the round-trip
table physics predicts, and the procfs helper. It imports nothing of clients/ or servers/."""
