"""What every model family implements or shares: the registry, the ``Family`` declaration, the
recipe protocol and training config, the live-model protocol, metadata, the checkpoint format,
atomic writes and the event record. It imports no model family."""
