"""Enforcement hands over to bankruptcy (执破衔接, Enterprise Bankruptcy Law art. 19)."""
