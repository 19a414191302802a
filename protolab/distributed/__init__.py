"""Sweeps across machines on Dask distributed (docs/distributed.md).

One `protolab worker` per lab machine (one process, one thread, the abstract resource
`lab_slot=1`: a machine runs one cell repetition at a time); `protolab bench SUITE
--scheduler tcp://HOST:PORT` submits every cell repetition as a task needing a lab slot
and alone writes the results database from what comes back.

`wire` (a repetition's result as plain JSON, lossless), `captures` (a repetition's pcap,
key log and qlog shipped back, bounded, and written where a local run keeps them),
`task` (what a worker runs),
`executor` (the submitting side: `DaskExecutor`, the bench runner's `Executor` over
Dask), `worker` (the checks a lab machine must pass, and the worker itself).

Nothing here is imported unless `--scheduler` or `protolab worker` is used: the local
path never loads Dask.
"""
