"""Reading ``infra/template.yaml`` outside CloudFormation: the YAML and its intrinsics.

The local stack's deployment (``devstack.deploy``), the template build
(``infra.api_template``), the layer build and the offline IAM checks
(``infra.iam``) all read the same template the same way; this module is that
one way. It imports nothing of the local stack, so ``infra/`` stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml


def default_template_path() -> Path:
    """``infra/template.yaml`` of the working tree this module is installed from."""
    # infra/template_source.py -> the template sits beside it.
    in_tree = Path(__file__).resolve().parent / "template.yaml"
    return in_tree if in_tree.exists() else Path.cwd() / "infra" / "template.yaml"


class DeployError(RuntimeError):
    """The template cannot be deployed (what CloudFormation would refuse, or worse)."""


# ---------------------------------------------------------------- loading


# libyaml's parser where PyYAML was built with it (the wheels are): the same SafeLoader
# constructors, ten times faster, and every local stack and test parses the template anew.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """SafeLoader that understands CloudFormation's short tags (``!Ref``, ``!Sub``...)."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        # "!GetAtt Queue.Arn" is the scalar form of ["Queue", "Arn"].
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # CloudFormation keeps 2010-09-09 a string; PyYAML would make it a date.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _short_tag)
_TemplateLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation YAML (or JSON) template into plain data."""
    with Path(path).open(encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict) or "Resources" not in template:
        raise DeployError(f"{path} is not a CloudFormation template (no Resources)")
    return template


# ---------------------------------------------------------------- intrinsics

_NO_VALUE = object()
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _join(args: Any) -> str:
    separator, items = args
    return str(separator).join(str(i) for i in items)


def _select(args: Any) -> Any:
    index, items = args
    return items[int(index)]


def _split(args: Any) -> list[str]:
    separator, text = args
    return list(text.split(separator))


def _equals(args: Any) -> bool:
    left, right = args
    return str(left) == str(right)


def _contains(args: Any) -> bool:
    allowed, value = args
    return str(value) in [str(a) for a in allowed]


def _each_member_equals(args: Any) -> bool:
    values, value = args
    return all(str(v) == str(value) for v in values)


def _each_member_in(args: Any) -> bool:
    values, allowed = args
    return {str(v) for v in values} <= {str(a) for a in allowed}


# The intrinsics that only need their arguments' values (the rest read the template or
# resolve lazily). Contains and EachMember* are the Rules-only functions.
_ON_VALUES: dict[str, Callable[[Any], Any]] = {
    "Join": _join,
    "Select": _select,
    "Split": _split,
    "Equals": _equals,
    "Not": lambda args: not args[0],
    "And": all,
    "Or": any,
    "Contains": _contains,
    "EachMemberEquals": _each_member_equals,
    "EachMemberIn": _each_member_in,
}


class Resolver:
    """Evaluates the intrinsic functions we need outside CloudFormation.

    Before deployment (Rules, Conditions) only parameters and pseudo
    parameters are known; after it, ``ref`` and ``get_att`` hooks give the
    physical ids and attributes. Anything unsupported raises ``DeployError``:
    a guess here could silently wire the local stack differently from AWS.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, str],
        ref: Callable[[str], Any] | None = None,
        get_att: Callable[[str, str], Any] | None = None,
    ) -> None:
        self._template = template
        self._values = {**pseudo, **parameters}
        self._ref = ref
        self._get_att = get_att
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._resolve_ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self._template.get("Conditions") or {}
            if name not in conditions:
                raise DeployError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def _resolve_ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._values:
            return self._values[name]
        if self._ref is None:
            raise DeployError(f"cannot resolve Ref {name} before deployment")
        return self._ref(name)

    def _attribute(self, logical_id: str, attribute: str) -> Any:
        if self._get_att is None:
            raise DeployError(f"cannot resolve GetAtt {logical_id}.{attribute} before deployment")
        return self._get_att(logical_id, attribute)

    def _function(self, name: str, arg: Any) -> Any:
        if name == "GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._attribute(logical_id, self.resolve(attribute))
        if name == "Sub":
            return self._sub(arg)
        if name == "If":
            condition, if_true, if_false = arg
            return self.resolve(if_true if self.condition(condition) else if_false)
        args = self.resolve(arg)
        if name == "FindInMap":
            mapping, top, second = args
            return self._template["Mappings"][mapping][top][second]
        if name not in _ON_VALUES:
            raise DeployError(f"intrinsic function Fn::{name} is not supported by the local stack")
        return _ON_VALUES[name](args)

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} escapes a variable
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._attribute(logical_id, attribute))
            return str(self._resolve_ref(name))

        return _SUB_VAR.sub(replace, text)


def pseudo_parameters(region: str, stack_name: str, account_id: str) -> dict[str, str]:
    """CloudFormation's pseudo parameters for a stack in ``account_id``."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
    }


_INCLUDE = "AWS::Include"


def inline_includes(template: Any, base_dir: str | Path) -> Any:
    """A copy of ``template`` with every ``Fn::Transform: AWS::Include`` replaced by its snippet.

    What CloudFormation does with the snippet ``sam package`` uploaded, before
    the Serverless transform runs (the innermost transforms go first). Only
    local ``Location`` paths (relative to ``base_dir``, the template's
    directory) can be read here; an ``s3://`` one raises ``DeployError``.
    """
    base = Path(base_dir)
    if isinstance(template, list):
        return [inline_includes(item, base) for item in template]
    if not isinstance(template, dict):
        return template
    transform = template.get("Fn::Transform")
    if len(template) == 1 and isinstance(transform, dict) and transform.get("Name") == _INCLUDE:
        location = (transform.get("Parameters") or {}).get("Location")
        if not isinstance(location, str) or "://" in location:
            raise DeployError(f"AWS::Include of {location!r}: only local snippet paths inline here")
        path = (base / location).resolve()
        try:
            with path.open(encoding="utf-8") as handle:
                snippet = yaml.load(handle, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
        except OSError as exc:
            raise DeployError(f"AWS::Include of {location}: {exc}") from None
        # A snippet may include others, relative to itself.
        return inline_includes(snippet, path.parent)
    return {key: inline_includes(value, base) for key, value in template.items()}
