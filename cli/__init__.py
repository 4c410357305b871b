"""The ``quitclaim`` console command (``cli.main:main``): the local stack and the operator API.

Tooling, never in a Lambda layer: production code does not import it.
"""
