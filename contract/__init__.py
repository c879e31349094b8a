"""What the trainer and the service must agree on, in a package of its own that both import and
that imports neither (nor TensorFlow, onnxruntime or a web framework): the model repository's
layout and each version's config.json (`config`), the text encoding (`text`, `sparse`), a typed
endpoint's names (`endpoint`), the book models' labels and features (`catalog`), and the strict
reader of numbers that come from outside (`numbers`). Pure Python, NumPy and pydantic."""
