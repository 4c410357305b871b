"""The emulator's one account: its id and the credentials it accepts.

Apart from ``emulator`` so that the fixes to moto's backends (``moto_fixes``,
``marketplace``) can name the account without importing the server they patch.
"""

from __future__ import annotations

# moto's default account; ARNs and the template's ${AWS::AccountId} use it.
ACCOUNT_ID = "123456789012"

# Credentials the emulator accepts and AWS rejects: if code ever misses the
# endpoint and reaches AWS, it fails to authenticate instead of using a
# developer's real identity.
FAKE_CREDENTIALS: dict[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
