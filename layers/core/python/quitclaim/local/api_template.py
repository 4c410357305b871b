"""Build the deployable template: ``chalice package --merge-template infra/template.yaml``.

    python -m quitclaim.local.api_template            # -> build/api/sam.yaml + deployment.zip

Chalice generates the API half (``APIHandler`` function, ``RestAPI`` with its
Swagger definition, the invoke permission, the role from
``functions/api/.chalice/policy-prod.json``, the ``EndpointURL`` output) and
deep-merges ``infra/template.yaml`` into it. Nothing about API Gateway is
written by hand. Two fix-ups follow, each because Chalice cannot be told:

- Chalice sets ``Runtime`` from the interpreter that packages (3.11 here);
  it is removed so ``Globals.Function.Runtime`` applies, as for every
  other function;
- relative ``CodeUri``/``ContentUri`` paths of ``infra/template.yaml`` are
  relative to ``infra/``; they are rebased onto the output directory.

Packaging imports the app, which validates settings: it runs with a pinned
EU region and no AWS profile (nothing is called in AWS).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from quitclaim.local.deploy import load_template
from quitclaim.local.stack import default_template_path

API_FUNCTION = "APIHandler"
_LOCAL_PATH_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


def repo_root() -> Path:
    return default_template_path().parents[1]


def build(
    out_dir: Path | None = None,
    *,
    template: Path | None = None,
    stage: str = "prod",
    region: str = "eu-central-1",
) -> Path:
    """Run ``chalice package`` and the fix-ups; the merged template's path."""
    root = repo_root()
    template = (template or root / "infra" / "template.yaml").resolve()
    out_dir = (out_dir or root / "build" / "api").resolve()
    project = root / "functions" / "api"
    environment = {
        **os.environ,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    environment.pop("AWS_PROFILE", None)
    command = [
        sys.executable,
        "-c",
        "import sys; from chalice.cli import main; sys.exit(main())",
        "package",
        "--stage",
        stage,
        "--pkg-format",
        "cloudformation",
        "--template-format",
        "yaml",
        "--merge-template",
        str(template),
        str(out_dir),
    ]
    subprocess.run(command, cwd=project, env=environment, check=True)  # noqa: S603
    merged_path = out_dir / "sam.yaml"
    merged = fix_up(load_template(merged_path), template.parent, out_dir)
    merged_path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return merged_path


def fix_up(merged: dict[str, Any], template_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Apply the two fix-ups described in the module docstring (in place)."""
    api = merged["Resources"][API_FUNCTION]["Properties"]
    api.pop("Runtime", None)
    for logical_id, resource in merged["Resources"].items():
        key = _LOCAL_PATH_PROPERTY.get(resource.get("Type", ""))
        value = (resource.get("Properties") or {}).get(key) if key else None
        if logical_id == API_FUNCTION or not _is_relative_path(value):
            continue
        target = (template_dir / value).resolve()
        rebased = os.path.relpath(target, out_dir)
        resource["Properties"][key] = rebased + ("/" if value.endswith("/") else "")
    return merged


def _is_relative_path(value: Any) -> bool:
    return isinstance(value, str) and "://" not in value and not os.path.isabs(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: build/api")
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    path = build(args.out, stage=args.stage)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
