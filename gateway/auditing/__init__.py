"""The auditors' domain: the auditor API, the console, checkpoint scheduling and
the aggregation of unauthenticated refusals."""
