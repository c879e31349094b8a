"""Trains the three Keras models of Deep Learning with Python, chapter 3, and publishes them to the
model repository as SavedModel + ONNX."""
