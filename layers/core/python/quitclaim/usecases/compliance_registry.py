"""The whole registry: tenants, subjects, consents and erasure on one set of stores.

Each aggregate is its own use-case (``TenantAdmin``, ``SubjectAdmin``,
``ConsentAdmin``, ``Erasure``); this class only joins them for collaborators
that need several (forms, imports, webhooks, reminders, rights, the dashboard).
The API's views use the one they need (``quitclaim.bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass

from quitclaim.usecases.erasure import Erasure
from quitclaim.usecases.subject_admin import SubjectAdmin
from quitclaim.usecases.tenant_admin import TenantAdmin


@dataclass
class Registry(TenantAdmin, SubjectAdmin, Erasure):
    """Tenants, subjects and consents: the compliance officer's ledger."""
