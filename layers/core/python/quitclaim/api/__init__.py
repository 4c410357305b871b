"""The HTTP API's shared parts: schemas, errors, serialisation, auth, the route table.

``functions/api/app.py`` (the Chalice app) wires these to routes; it holds
no logic of its own.
"""
