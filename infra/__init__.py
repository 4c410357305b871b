"""The deployable template and its tooling: template reading, the API template build,
the layer build, the offline IAM checks and the dependency audit. Imports no local stack.
"""
