"""The auditors' domain in the app: the auditor API and console, checkpoint
scheduling, the aggregation of unauthenticated refusals, and ``log.py``, which
gives the app its one audit log. The log itself (chain, store, checkpoints,
verify) is the top-level ``audit`` package, which knows nothing of Flask."""
