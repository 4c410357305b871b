"""Where an outbound endpoint's host is, as far as its name tells (Art. 30(1)(e)).

A rule, not a lookup: a name says where it is *registered*, not where the
server runs or who can reach the data. So:

- a few well-known providers the tenants connect (their documented hosting)
  are named exactly;
- a country-code top-level domain of the EU/EEA is "EU/EEA" (not a third
  country); another country code names that country (ISO 3166 alpha-2,
  upper case; ``.uk`` is GB);
- generic top-level domains (``.com``, ``.io``, ``.net``, ...), IP
  addresses and anything else are *unresolved*: the record lists them for
  the controller to check, never silently as "no transfer".

Limits (docs/retention.md): a ``.de`` name can point at a server in the
US, a ``.com`` at one in Frankfurt; a CDN or a sub-processor behind the
endpoint is invisible here. The controller confirms each entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

EU_EEA = frozenset(
    {
        *("at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu"),
        *("ie", "it", "lv", "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es"),
        *("se", "is", "li", "no", "eu"),
    }
)
# Country-code TLDs whose country differs from the code (or is not a country).
_CC_COUNTRY: dict[str, str | None] = {
    "uk": "GB",
    "ac": "SH",
    "io": None,
    "co": None,
    "me": None,
    "tv": None,
    "ai": None,
}
# Providers tenants connect, by host suffix: where their documented hosting is.
KNOWN_HOSTS = {
    "hubapi.com": "US",
    "hubspot.com": "US",
    "api.mailchimp.com": "US",
    "zapier.com": "US",
    "typeform.com": "ES",
}


@dataclass(frozen=True, slots=True)
class HostCountry:
    host: str
    country: str | None  # ISO code, "EU/EEA", or None (unresolved)
    rule: str  # "known provider" | "country-code domain" | "unresolved"

    @property
    def third_country(self) -> bool:
        return self.country is not None and self.country != "EU/EEA"


def country_of_host(host: str) -> HostCountry:
    name = host.strip().lower().rstrip(".")
    for suffix, country in KNOWN_HOSTS.items():
        if name == suffix or name.endswith("." + suffix):
            eu = country in {c.upper() for c in EU_EEA}
            return HostCountry(name, "EU/EEA" if eu else country, "known provider")
    try:
        ipaddress.ip_address(name.strip("[]"))
        return HostCountry(name, None, "unresolved")
    except ValueError:
        pass
    tld = name.rsplit(".", 1)[-1]
    if tld in EU_EEA:
        return HostCountry(name, "EU/EEA", "country-code domain")
    if len(tld) == 2 and tld.isalpha():
        coded = _CC_COUNTRY.get(tld, tld.upper())
        if coded is not None:
            return HostCountry(name, coded, "country-code domain")
    return HostCountry(name, None, "unresolved")
