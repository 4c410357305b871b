"""SES bounces and complaints reach the function that records them (docs/retention.md)."""

from __future__ import annotations

from typing import Any

from quitclaim.adapters.mail import SesMailer
from quitclaim.domain.ports import Email
from tests.unit.infra import templates


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = templates.source()["Resources"]
    return resources


def test_every_mail_goes_through_the_set_that_reports_bounces_and_complaints() -> None:
    resources = _resources()
    # Given the template, Then every function sends through the configuration set
    env = templates.source()["Globals"]["Function"]["Environment"]["Variables"]
    assert env["QC_MAIL_CONFIGURATION_SET"] == {"Ref": "MailConfigurationSet"}
    assert resources["MailConfigurationSet"]["Type"] == "AWS::SES::ConfigurationSet"
    # And its event destination sends bounces and complaints to the feedback topic
    destination = resources["MailFeedbackDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "MailConfigurationSet"}
    event = destination["EventDestination"]
    assert event["Enabled"] is True
    assert sorted(event["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert event["SnsDestination"]["TopicARN"] == {"Ref": "MailFeedbackTopic"}
    # And the topic is encrypted with the stack's key, which SES may use
    topic = resources["MailFeedbackTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "DataKey"}
    # And only SES, for this account's configuration set, may publish to it
    [statement] = resources["MailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert "aws:SourceArn" in statement["Condition"]["StringEquals"]
    # And the reminders function (functions/reminders: SNS records -> MailFeedback) subscribes
    events = resources["RemindersFunction"]["Properties"]["Events"]
    assert events["MailFeedback"] == {
        "Type": "SNS",
        "Properties": {"Topic": {"Ref": "MailFeedbackTopic"}},
    }


class _Ses:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_email(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def test_the_mailer_names_the_configuration_set_when_one_is_configured() -> None:
    ses = _Ses()
    email = Email("a@example.org", "s", "t", "<p>t</p>", tags={"tenant": "t1"})
    SesMailer(ses, sender="q@example.org", configuration_set="quitclaim-prod-mail").send(email)
    SesMailer(ses, sender="q@example.org").send(email)
    assert ses.sent[0]["ConfigurationSetName"] == "quitclaim-prod-mail"
    assert ses.sent[0]["Tags"] == [{"Name": "tenant", "Value": "t1"}]
    assert "ConfigurationSetName" not in ses.sent[1]
