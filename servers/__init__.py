"""One server per protocol, all answering the workload vocabulary of `protolab.workload`."""
