"""Handshake tracer: capture one connection, decode it step by step, count its round trips.

Layers, each a small module: `kinds` (what can be traced and what the protocol's design
predicts), `capture` (runs a connection through the emulated link, keeps pcap + key log +
qlog), `pcapfile` (pcap/pcapng records), `packets` (IPv4/IPv6, TCP, UDP), `tcpstream`
(per-direction reassembly), `keylog` (NSS key log), `tls` (records and handshake messages,
TLS 1.3 decryption), `quic` (aioquic's header and packet protection), `steps` (the step
list and round-trip accounting), `render` (ladder, JSON).
"""
