"""``quitclaim usage reconcile|billing|customer``: the operator's billing commands."""

from __future__ import annotations

import json

import click

from cli.operator import run_operator as _run


def add_billing_commands(usage: click.Group) -> None:
    usage.add_command(reconcile)
    usage.add_command(billing)
    usage.add_command(customer)


@click.command("reconcile")
@click.option("--month", required=True, help="UTC month YYYY-MM")
@click.option("--tenant", "tenants", multiple=True, help="only these tenants (default: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def reconcile(month: str, tenants: tuple[str, ...], as_json: bool) -> None:
    """Counters vs records vs sent vs accepted, per tenant and dimension; exit 1 on a difference."""
    from quitclaim.bootstrap import billing_service

    result = _run(lambda: billing_service().reconcile(month, list(tenants) or None))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        tenants_seen = len({line.tenant for line in result.lines})
        for line in result.differences:
            click.echo(
                f"{line.tenant} {line.dimension}: {', '.join(line.problems)} "
                f"(metered {line.metered}, recomputed {line.recomputed}, "
                f"sent {line.sent}, accepted {line.accepted})"
            )
        verdict = "clean" if result.clean else f"{len(result.differences)} differences"
        click.echo(f"{result.month}: {tenants_seen} tenants reconciled, {verdict}")
    raise SystemExit(0 if result.clean else 1)


@click.command("billing")
@click.option("--month", required=True, help="UTC month YYYY-MM")
def billing(month: str) -> None:
    """Every claimed hour of the month, per tenant: quantities, sink, each record's status."""
    from quitclaim.bootstrap import billing_service

    rows = _run(lambda: billing_service().status(month))
    click.echo(json.dumps(rows, indent=2))


@click.command("customer")
@click.option("--tenant", required=True)
@click.option("--marketplace-customer-id", default=None, help="from ResolveCustomer at signup")
@click.option("--none", "remove", is_flag=True, help="bill through usage.hourly only")
def customer(tenant: str, marketplace_customer_id: str | None, remove: bool) -> None:
    """Onboarding: set (or remove) the tenant's AWS Marketplace customer identifier."""
    from quitclaim.bootstrap import billing_service

    if remove == (marketplace_customer_id is not None):
        raise click.UsageError("give either --marketplace-customer-id ID or --none")
    _run(lambda: billing_service().set_customer(tenant, marketplace_customer_id))
    click.echo(json.dumps({"tenant": tenant, "marketplace_customer_id": marketplace_customer_id}))
