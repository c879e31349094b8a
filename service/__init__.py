"""REST model-serving microservice: onnxruntime behind FastAPI. Never imports TensorFlow."""
