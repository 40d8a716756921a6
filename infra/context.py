"""What every component shares: the stack's names, location, resource group, tags and Azure
identity. A component's own settings come in its Args, never from the stack's config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, resources

from infra.config import StackConfig
from infra.naming import Names


def stack_tags(stack: str, tier: str) -> dict[str, str]:
    """The tags on every taggable resource of the stack."""
    return {"project": "restaurant-review", "stack": stack, "tier": tier}


@dataclass(frozen=True)
class Context:
    stack: str
    tier: str
    location: str
    # Outside the disposable dev tier: data is protected and retained (stateful), and the
    # data services keep fixed names, longer retention and redundancy.
    production: bool
    names: Names
    resource_group: resources.ResourceGroup
    tenant_id: pulumi.Output[str]
    subscription_id: pulumi.Output[str]

    @property
    def rg_name(self) -> pulumi.Output[str]:
        return self.resource_group.name

    @property
    def tags(self) -> dict[str, str]:
        return stack_tags(self.stack, self.tier)

    def stateful(self, *depends_on: pulumi.Resource,
                 parent: pulumi.Resource | None = None) -> pulumi.ResourceOptions:
        """Options for resources that hold data: protected and retained outside dev.

        `protect` stops `pulumi destroy` and replacements; `retain_on_delete` keeps the Azure
        resource even if someone unprotects and deletes it from the program by mistake.
        """
        keep = self.production
        return pulumi.ResourceOptions(
            protect=keep, retain_on_delete=keep, depends_on=list(depends_on) or None,
            parent=parent,
        )


def create_context(cfg: StackConfig) -> Context:
    names = Names.for_stack(cfg)
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(
        "resource-group",
        resource_group_name=names.resource_group,
        location=cfg.location,
        tags=stack_tags(cfg.stack, cfg.tier),
        # Deleting the group deletes everything in it, retained data included: outside dev it
        # is protected, and retained too, so a destroy that gets past the protection still
        # leaves the group, and the data resources retained in it, in Azure.
        opts=pulumi.ResourceOptions(protect=cfg.is_production,
                                    retain_on_delete=cfg.is_production),
    )
    return Context(
        stack=cfg.stack,
        tier=cfg.tier,
        location=cfg.location,
        production=cfg.is_production,
        names=names,
        resource_group=group,
        tenant_id=client.tenant_id,
        subscription_id=client.subscription_id,
    )
