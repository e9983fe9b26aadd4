"""Metrics (classification, SED, localization) and the latency benchmark harness."""
