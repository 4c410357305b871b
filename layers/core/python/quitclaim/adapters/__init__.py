"""Adapters: boto3 / PynamoDB implementations of the domain ports."""
