"""REST model-serving microservice: onnxruntime behind FastAPI. Never imports TensorFlow."""

__version__ = "0.1.0"
