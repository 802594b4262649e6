"""Codecs: one per agency kind, mapping the canonical model to the agency's
messages and back. A codec never touches a socket."""
