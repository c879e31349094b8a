"""The benchmark's baselines, each a server of its own: the HTTP floor, the plain FastAPI app, the
naive Keras server, and the compute limit (no server: onnxruntime in a process of its own)."""
