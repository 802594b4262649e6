"""Asset reports: every asset found for a subject in a case, with the gaps."""
