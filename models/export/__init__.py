"""ONNX export with self-verification (``onnx``) and the ``python -m models.export`` command (``cli``)."""
