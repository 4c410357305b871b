"""Pure domain: no boto3, no pynamodb, no dlib, no I/O."""
