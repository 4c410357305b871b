"""A function's environment while the local runtime runs it, as Lambda's container has it.

Its configured variables and the emulator's endpoint and fake credentials;
nothing of the developer's shell that could reach a real AWS identity; its
code directory on the path; and settings (and, when they change, the
composition root's services) rebuilt as in a fresh container.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from devstack.emulator import FAKE_CREDENTIALS
from devstack.invocations import FunctionSpec
from quitclaim.bootstrap import reset_container
from quitclaim.config import reset_settings

# Variables that could point boto3 at a real identity or another endpoint;
# they are removed while a function runs, whatever the developer's shell has.
_UNSAFE_VARIABLES = frozenset(
    {
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    }
)


def aws_client_env(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment that makes any AWS SDK talk to the emulator and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["aws_session_token"],
        # No profiles, no instance metadata: nothing real to fall back on.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# The environment the composition root's cached services were built for.
_LAST_CONTAINER_ENVIRONMENT: dict[str, str] | None = None
# What Lambda sets to tell functions apart. The composition root builds its
# services from settings, which these do not feed, so switching between
# functions of one stack keeps them; rebuilding them on every switch cost
# ~150 ms per invocation (new botocore clients), which a tick that alternates
# the sweep and the reminders pays hundreds of times.
_FUNCTION_IDENTITY = frozenset(
    {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_EXECUTION_ENV",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
    }
)


@contextmanager
def function_environment(spec: FunctionSpec) -> Iterator[None]:
    """The function's environment while it runs, as a fresh Lambda container would have it."""
    environment = spec.environment
    unsafe = [
        name
        for name in os.environ
        if name in _UNSAFE_VARIABLES or name.startswith("AWS_ENDPOINT_URL_")
    ]
    touched = set(unsafe) | set(environment)
    saved = {name: value for name, value in os.environ.items() if name in touched}
    saved_session = boto3.DEFAULT_SESSION
    for name in unsafe:
        os.environ.pop(name, None)
    os.environ.update(environment)
    # Sibling modules of the handler import as they do in Lambda (task root on the path).
    code_dir = str(spec.code_dir) if spec.code_dir else None
    if code_dir:
        sys.path.insert(0, code_dir)
    # A fresh "container": settings and boto3's default session re-read the environment.
    boto3.DEFAULT_SESSION = None
    reset_settings()
    global _LAST_CONTAINER_ENVIRONMENT
    relevant = {k: v for k, v in environment.items() if k not in _FUNCTION_IDENTITY}
    if relevant != _LAST_CONTAINER_ENVIRONMENT:
        # Other settings (another stack, or a function with its own variables):
        # services built from the old settings go too.
        reset_container()
        _LAST_CONTAINER_ENVIRONMENT = relevant
    try:
        yield
    finally:
        if code_dir and code_dir in sys.path:
            sys.path.remove(code_dir)
        for name in touched:
            os.environ.pop(name, None)
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = saved_session
        reset_settings()
