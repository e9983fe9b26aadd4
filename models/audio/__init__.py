"""The audio front end (STFT, mel, log; exportable to ONNX) and SpecAugment."""
