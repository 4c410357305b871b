"""samconfig.toml: EU regions, change sets confirmed, capabilities, tags."""

from __future__ import annotations

import shlex
import tomllib

from tests.conftest import REPO_ROOT
from tests.unit.infra import templates

CONFIG = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def test_frankfurt_by_default_and_an_ireland_profile() -> None:
    assert CONFIG["default"]["deploy"]["parameters"]["region"] == "eu-central-1"
    assert CONFIG["default"]["global"]["parameters"]["region"] == "eu-central-1"
    assert CONFIG["eu-west-1"]["deploy"]["parameters"]["region"] == "eu-west-1"


def test_every_profile_confirms_changesets_with_the_capabilities_and_tags_it_needs() -> None:
    named_iam = any(
        "ManagedPolicyName" in r.get("Properties", {})
        for r in templates.source()["Resources"].values()
    )
    for name in ("default", "eu-west-1"):
        deploy = CONFIG[name]["deploy"]["parameters"]
        assert deploy["confirm_changeset"] is True
        capabilities = deploy["capabilities"].split()
        assert "CAPABILITY_IAM" in capabilities
        assert ("CAPABILITY_NAMED_IAM" in capabilities) == named_iam
        tags = dict(t.split("=", 1) for t in shlex.split(deploy["tags"]))
        assert tags["project"] == "quitclaim" and tags["data-classification"] == "biometric"
        assert deploy["template_file"] == "build/api/sam.yaml"  # what `make package` writes
        overrides = dict(o.split("=", 1) for o in shlex.split(deploy["parameter_overrides"]))
        assert set(overrides) <= set(templates.source()["Parameters"])
