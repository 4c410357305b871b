"""Resources moto's CloudFormation skips (gaps 9-12 and 23 in ``gaps.py``), created
through their own APIs under the template's names: secrets, schedule groups and
schedules, SES configuration sets; then the functions' environments that referred
to them, and ``release`` deletes them with the stack."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from devstack import signin

if TYPE_CHECKING:
    from devstack.deploy import Deployment
    from devstack.gaps import GapReport

log = logging.getLogger(__name__)


def skipped(deployment: Deployment, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Resources of ``kind`` in the translated template that the emulator did not create."""
    return [
        (logical_id, resource.get("Properties") or {})
        for logical_id, resource in deployment.translated["Resources"].items()
        if resource.get("Type") == kind and logical_id not in deployment.resource_types
    ]


def physical_name(deployment: Deployment, logical_id: str, limit: int = 64) -> str:
    return f"{deployment.stack_name}-{logical_id}"[:limit]


def create_secrets(deployment: Deployment, report: GapReport) -> list[str]:
    """Create each skipped Secrets Manager secret, with its generated value (gap 9)."""
    done = []
    for logical_id, properties in skipped(deployment, "AWS::SecretsManager::Secret"):
        secrets = deployment.client("secretsmanager")
        spec = deployment.resolve(properties)
        name = spec.get("Name") or physical_name(deployment, logical_id, 512)
        value = spec.get("SecretString")
        generate = spec.get("GenerateSecretString")
        if value is None and generate is not None:
            value = _generated_secret(secrets, generate)
        create: dict[str, Any] = {"Name": name, "SecretString": value or ""}
        if spec.get("Description"):
            create["Description"] = spec["Description"]
        try:
            arn = secrets.create_secret(**create)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            arn = secrets.describe_secret(SecretId=name)["ARN"]  # a redeploy keeps its value
        deployment.resources[logical_id] = arn
        report.created.append(("secret", arn))
        done.append(f"secret {logical_id} with a generated value")
    return done


def _generated_secret(secrets: Any, generate: dict[str, Any]) -> str:
    options = {
        name: generate[name]
        for name in (
            "ExcludeCharacters",
            "ExcludeLowercase",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "ExcludeUppercase",
            "IncludeSpace",
            "RequireEachIncludedType",
        )
        if name in generate
    }
    password: str = secrets.get_random_password(
        PasswordLength=int(generate.get("PasswordLength", 32)), **options
    )["RandomPassword"]
    template, key = generate.get("SecretStringTemplate"), generate.get("GenerateStringKey")
    if template and key:
        document = json.loads(template)
        document[key] = password
        return json.dumps(document)
    return password


def create_schedule_groups(deployment: Deployment, report: GapReport) -> list[str]:
    """Create each skipped Scheduler schedule group (gap 10)."""
    done = []
    for logical_id, properties in skipped(deployment, "AWS::Scheduler::ScheduleGroup"):
        scheduler = deployment.client("scheduler")
        name = deployment.resolve(properties.get("Name")) or physical_name(deployment, logical_id)
        try:
            scheduler.get_schedule_group(Name=name)
        except scheduler.exceptions.ResourceNotFoundException:
            scheduler.create_schedule_group(Name=name)
            report.created.append(("schedule-group", name))
        deployment.resources[logical_id] = name
        done.append(f"schedule group {logical_id} ({name})")
    return done


def create_template_schedules(deployment: Deployment, report: GapReport) -> list[str]:
    """Create each skipped Scheduler schedule through the Scheduler API (gap 11)."""
    done = []
    for logical_id, properties in skipped(deployment, "AWS::Scheduler::Schedule"):
        scheduler = deployment.client("scheduler")
        spec = deployment.resolve(properties)
        name = spec.get("Name") or physical_name(deployment, logical_id)
        create: dict[str, Any] = {
            "Name": name,
            "ScheduleExpression": spec["ScheduleExpression"],
            "FlexibleTimeWindow": spec.get("FlexibleTimeWindow") or {"Mode": "OFF"},
            "Target": spec["Target"],
        }
        for prop in ("GroupName", "Description", "ScheduleExpressionTimezone", "State"):
            if spec.get(prop):
                create[prop] = spec[prop]
        for prop in ("StartDate", "EndDate"):
            if spec.get(prop):
                create[prop] = datetime.fromisoformat(str(spec[prop]).replace("Z", "+00:00"))
        deployment.resources[logical_id] = name  # Ref of a schedule is its name
        try:
            scheduler.create_schedule(**create)
        except scheduler.exceptions.ConflictException:
            continue  # already there (a fill that ran before)
        report.created.append(("schedule", f"{create.get('GroupName', 'default')}/{name}"))
        done.append(f"schedule {logical_id} ({spec['ScheduleExpression']})")
    return done


def apply_function_environments(deployment: Deployment) -> list[str]:
    """Put each function's template Environment where moto dropped variables (gap 12)."""
    lam = deployment.client("lambda")
    done = []
    for logical_id, resource in deployment.translated["Resources"].items():
        if (
            resource.get("Type") != "AWS::Lambda::Function"
            or logical_id not in deployment.resources
        ):
            continue
        variables = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")
        if not variables:
            continue
        wanted = {k: str(v) for k, v in deployment.resolve(variables).items()}
        name = deployment.resources[logical_id]
        config = lam.get_function_configuration(FunctionName=name)
        current = (config.get("Environment") or {}).get("Variables") or {}
        if current == wanted:
            continue
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": wanted})
        changed = sorted(k for k in wanted if current.get(k) != wanted[k])
        done.append(f"environment of {logical_id} ({', '.join(changed)})")
    return done


def release(deployment: Deployment, report: GapReport) -> None:
    """Delete what the fills created (a stack leaving a shared emulator)."""
    for kind, identifier in reversed(report.created):
        try:
            if kind == "schedule":
                group, name = identifier.split("/", 1)
                deployment.client("scheduler").delete_schedule(Name=name, GroupName=group)
            elif kind == "schedule-group":
                deployment.client("scheduler").delete_schedule_group(Name=identifier)
            elif kind == "user-pool":
                signin.release_user_pool(deployment, identifier)
            elif kind == "ses-configuration-set":
                deployment.client("ses").delete_configuration_set(ConfigurationSetName=identifier)
            elif kind == "secret":
                deployment.client("secretsmanager").delete_secret(
                    SecretId=identifier, ForceDeleteWithoutRecovery=True
                )
        except Exception:  # the emulator may be gone already; nothing to keep then
            log.debug("could not delete %s %s", kind, identifier, exc_info=True)


def create_mail_configuration_sets(deployment: Deployment, report: GapReport) -> list[str]:
    """Create each skipped SES configuration set and its event destinations (gap 23)."""
    ses = deployment.client("ses")
    done = []
    for logical_id, properties in skipped(deployment, "AWS::SES::ConfigurationSet"):
        name = deployment.resolve(properties.get("Name")) or physical_name(deployment, logical_id)
        try:
            ses.create_configuration_set(ConfigurationSet={"Name": name})
        except ses.exceptions.ConfigurationSetAlreadyExistsException:
            pass  # a fill that ran before
        else:
            report.created.append(("ses-configuration-set", name))
        deployment.resources[logical_id] = name  # Ref of a configuration set is its name
        done.append(f"SES configuration set {logical_id} ({name})")
    for logical_id, properties in skipped(deployment, "AWS::SES::ConfigurationSetEventDestination"):
        spec = deployment.resolve(properties)
        destination = dict(spec["EventDestination"])
        if "SnsDestination" in destination:  # CloudFormation's spelling; the API's is SNS…
            destination["SNSDestination"] = destination.pop("SnsDestination")
        try:
            ses.create_configuration_set_event_destination(
                ConfigurationSetName=spec["ConfigurationSetName"],
                EventDestination=destination,
            )
        except ses.exceptions.EventDestinationAlreadyExistsException:
            # moto keys destination names per account, SES per configuration
            # set: another stack's set holds this name, so attach it in moto's
            # backend (only this stack's own set is touched).
            from moto.ses.models import ses_backends

            backend = ses_backends[deployment.account_id][deployment.region]
            backend.config_set_event_destination[spec["ConfigurationSetName"]] = destination
        deployment.resources[logical_id] = destination["Name"]
        done.append(f"SES event destination {logical_id} ({destination['Name']})")
    return done
