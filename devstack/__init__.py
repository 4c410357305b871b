"""The embedded local stack: the AWS emulator, the deployed template, the runtime and the clock.

Tooling, never in a Lambda layer: production code (``quitclaim``, ``functions/``) does not
import it, nor does ``infra/``.
"""
