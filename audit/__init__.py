"""The append-only, hash-chained audit log.

``chain.py`` is pure: the canonical encoding of an event and the check of a
chain. ``models.py`` is the table; ``store.py`` appends and verifies through a
SQLAlchemy session handed in by the caller, in the caller's transaction, so an
event commits or rolls back with the change it records. This package knows
nothing of HTTP, adapters or workers.
"""
