"""protolab's gRPC service definition (lab.proto) and its generated Python modules."""
