"""Use-cases: orchestrate ports and the pure domain. No boto3 here."""
