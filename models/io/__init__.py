"""Media reading and writing with PyAV, and decoding of untrusted files in worker processes."""
