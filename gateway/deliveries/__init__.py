"""Deliveries: the outbox, the worker that drains it, and the results."""
