"""Authentication (JWT over asymmetric keys) and the role checks of each view."""
