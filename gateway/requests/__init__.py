"""Requests: one submission by an officer, fanned out as deliveries."""
