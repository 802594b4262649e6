"""Transports: one verb, ``send(envelope) -> Reply``, and ``close()``."""
