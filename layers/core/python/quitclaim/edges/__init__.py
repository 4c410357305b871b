"""What a handler needs from the outside world's shapes: events in, partial batches out.

``batch`` builds queue and stream handlers, ``s3_events`` parses S3
notifications, ``uploads`` is the ingest batch. Handlers import these, the
composition root, config, observability and domain types: nothing else.
"""
