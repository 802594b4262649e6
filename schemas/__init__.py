"""The canonical model, the public API's schemas, the agencies' message formats
and the identifier validators.

This package imports nothing else of the project: every other package may use it.
"""
