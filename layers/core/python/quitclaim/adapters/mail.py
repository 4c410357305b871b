"""SES for outbound e-mail, and Secrets Manager for the link-signing key."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import ConfigurationError, DependencyFailed
from quitclaim.domain.ports import Email


class SesMailer:
    def __init__(self, client: Any, *, sender: str, configuration_set: str = "") -> None:
        self._ses = client
        self._sender = sender
        self._configuration_set = configuration_set

    def send(self, email: Email) -> None:
        extra: dict[str, Any] = {}
        if self._configuration_set:
            # Bounces and complaints come back only for mail sent through it, with its tags.
            extra["ConfigurationSetName"] = self._configuration_set
        if email.tags:
            extra["Tags"] = [{"Name": k, "Value": v} for k, v in sorted(email.tags.items())]
        try:
            self._ses.send_email(
                **extra,
                Source=self._sender,
                Destination={"ToAddresses": [email.to]},
                Message={
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                },
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise DependencyFailed(f"SES send failed: {code}") from exc


def secret_bytes(client: Any, secret_id: str) -> bytes:
    """A secret's value, read once per container by the caller."""
    if not secret_id:
        raise ConfigurationError("QC_LINK_SECRET_ARN is not set")
    try:
        value = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise DependencyFailed(f"secret read failed: {code}") from exc
    text = value.get("SecretString")
    return text.encode() if text is not None else bytes(value["SecretBinary"])
