"""The Open Inference Protocol (KServe V2) over gRPC: its messages (`messages`), the translation of
each RPC to the data plane (`servicer`), and the server that admits, reads and answers each call
through the request lifecycle (`server`)."""
