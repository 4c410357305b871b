"""The templates the offline checks look at, built once per test session.

- ``source()``: ``infra/template.yaml`` with its ``AWS::Include`` snippets
  inlined (what CloudFormation sees before the Serverless transform);
- ``merged()``: the deployable template, ``chalice package --merge-template``
  plus the fix-ups (``infra.api_template.build``), inlined;
- ``translate()``: either one through aws-sam-translator, offline, with
  local ``CodeUri``/``ContentUri`` paths replaced as ``sam package`` would.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from devstack.deploy import package, translate
from infra.template_source import inline_includes, load_template
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
REGION = "eu-central-1"


def source() -> dict[str, Any]:
    return _source()


@functools.cache
def _source() -> dict[str, Any]:
    return inline_includes(load_template(TEMPLATE), TEMPLATE.parent)


@functools.cache
def merged_path() -> Path:
    from infra.api_template import build

    out = Path(tempfile.mkdtemp(prefix="qc-merged-")) / "api"
    return build(out, template=TEMPLATE)


@functools.cache
def merged() -> dict[str, Any]:
    path = merged_path()
    return inline_includes(load_template(path), path.parent)


def parameters(template: dict[str, Any]) -> dict[str, Any]:
    """The template's defaults (what ``sam deploy`` with samconfig's overrides uses)."""
    return {k: v.get("Default") for k, v in (template.get("Parameters") or {}).items()}


@functools.cache
def _translated(which: str) -> dict[str, Any]:
    template = merged() if which == "merged" else source()
    packaged = package(template, lambda key, data: ("artifacts-bucket", key))
    return translate(packaged, parameters(template), REGION)


def translated(which: str = "merged") -> dict[str, Any]:
    """The CloudFormation template CloudFormation would get (``merged`` or ``source``)."""
    return _translated(which)
