"""The agencies' side of the API: results posted back, requests fetched (pull mode)."""
