"""Background work apart from the delivery dispatcher (gateway/background/housekeeper.py)."""
