"""The runtime imports each function's real module by path, once, in its environment.

Uses a copy of the template beside a throwaway ``functions/ingest/app.py``, so
the real ingest handler (being written elsewhere) is never involved.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from infra.template_source import default_template_path
from tests.integration.local.conftest import INGEST, fresh_stack, send

pytestmark = pytest.mark.integration

SIBLING = "_qc_local_test_sibling"

APP = f"""
import os

import {SIBLING}

IMPORTS = globals().get("IMPORTS", 0) + 1
AT_IMPORT = {{k: os.environ.get(k) for k in ("QC_UPLOADS_BUCKET", "AWS_LAMBDA_FUNCTION_NAME")}}


def handler(event, context):
    if any(r.get("body") == "fail" for r in event.get("Records", [])):
        raise RuntimeError("told to fail")
    return {{"imports": IMPORTS, "at_import": AT_IMPORT, "module": __name__,
             "sibling": {SIBLING}.VALUE, "records": len(event.get("Records", []))}}
"""


@pytest.fixture
def tree_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack deployed from a copy of the template next to a fake ingest function."""
    (tmp_path / "infra").mkdir()
    shutil.copy(default_template_path(), tmp_path / "infra" / "template.yaml")
    # The template's AWS::Include snippets (IAM documents) come along, as sam package would.
    shutil.copytree(default_template_path().parents[1] / "policies", tmp_path / "policies")
    code = tmp_path / "functions" / "ingest"
    code.mkdir(parents=True)
    (code / "app.py").write_text(textwrap.dedent(APP))
    (code / f"{SIBLING}.py").write_text("VALUE = 'sibling'\n")
    stack = fresh_stack(template_path=tmp_path / "infra" / "template.yaml")
    try:
        yield stack
    finally:
        stack.stop()
        sys.modules.pop(SIBLING, None)


def test_the_handler_module_is_imported_once_by_path_in_the_functions_env(
    tree_stack: LocalStack,
) -> None:
    stack = tree_stack
    # When the function is invoked twice
    first = stack.runtime.invoke(INGEST, {"Records": []})
    second = stack.runtime.invoke(INGEST, {"Records": []})
    # Then its module was imported once (a warm container), under a unique name
    assert first["imports"] == second["imports"] == 1
    assert first["module"].startswith("_quitclaim_local_IngestFunction")
    assert first["module"] in sys.modules
    # And with the function's environment already set at import time
    assert first["at_import"] == {
        "QC_UPLOADS_BUCKET": stack.outputs["UploadsBucketName"],
        "AWS_LAMBDA_FUNCTION_NAME": stack.resources[INGEST],
    }
    # And a sibling module of the handler imports, as from Lambda's task root
    assert first["sibling"] == "sibling"


def test_the_real_module_handles_queued_messages_and_its_errors_return_them(
    tree_stack: LocalStack,
) -> None:
    stack = tree_stack
    # Given the s3:TestEvent and a message the handler fails on once
    send(stack, "fail")
    report = stack.runtime.poll_once()
    # Then the batch with the failing message returned whole
    assert report.failures == 2
    assert report.errors == ["IngestFunction: RuntimeError: told to fail"]
    # When the runtime stops, Then the imported module is forgotten
    module = next(name for name in sys.modules if name.startswith("_quitclaim_local_Ingest"))
    stack.runtime.close()
    assert module not in sys.modules


def test_a_function_without_local_code_fails_clearly(stack: LocalStack, tmp_path: Path) -> None:
    # Given the runtime pointed at a directory without the handler module
    runtime = stack.runtime
    import dataclasses

    runtime.functions[INGEST] = dataclasses.replace(runtime.functions[INGEST], code_dir=tmp_path)
    # When invoked without an override, Then the error names the function and handler
    with pytest.raises(Exception, match=r"IngestFunction: no handler module for 'app.handler'"):
        runtime.invoke(INGEST, {})
