"""checkov suppressions: each one names the check, where it applies and why it is meaningless there.

A suppression lands in the ARM rendering as resource metadata (`"checkov": ["CKV_ID: reason"]`),
the inline mechanism checkov's ARM runner reads, so the reason travels with the scanned resource
and shows in checkov's report next to SKIPPED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from policy.rules import is_deployment_artefact_store
from review.model import Resource

ALL_TIERS = frozenset({"basic", "standard", "isolated"})
DEPLOYER_STORAGE_LOGICAL_NAME = "deployer-storage"  # infra/deployer.py


@dataclass(frozen=True)
class Skip:
    check_id: str
    types: frozenset[str]  # azure-native type tokens it applies to
    tiers: frozenset[str]
    justification: str
    # Narrows the skip to resources in a given state, so it stops applying when they change.
    when: Callable[[Resource], bool] = field(default=lambda resource: True, compare=False)

    def applies(self, resource: Resource, tier: str) -> bool:
        return resource.type in self.types and tier in self.tiers and self.when(resource)

    @property
    def comment(self) -> str:
        return f"{self.check_id}: {self.justification}"


def _skip(check_id: str, types: set[str], tiers: set[str] | frozenset[str], why: str,
          when: Callable[[Resource], bool] | None = None) -> Skip:
    tokens = frozenset(f"azure-native:{t}" for t in types)
    extra = {"when": when} if when else {}
    return Skip(check_id, tokens, frozenset(tiers), " ".join(why.split()), **extra)


def _secret_name(resource: Resource) -> str:
    return str(resource.inputs.get("secretName", ""))


def _rule_sets(resource: Resource) -> list[dict]:
    return list((resource.inputs.get("managedRules") or {}).get("managedRuleSets") or [])


def _sku_name(resource: Resource) -> str:
    return str((resource.inputs.get("sku") or {}).get("name", ""))


def _deployment_artefacts(resource: Resource) -> bool:
    """The deployer's artefact account: the policy pack's test (tag and account name) and the
    logical name infra/deployer.py gives it."""
    return (resource.name == DEPLOYER_STORAGE_LOGICAL_NAME
            and is_deployment_artefact_store(resource.type, resource.inputs))


def _photos(resource: Resource) -> bool:
    return not _deployment_artefacts(resource)


SITES = {"web:WebApp", "web:WebAppSlot"}
BASIC = {"basic"}
PRIVATE = {"standard", "isolated"}

_PUBLIC_DATA = """Basic tier: no VNet integration and no private endpoints exist on B1, so the app
reaches this service over its public endpoint; access is Entra/RBAC-only for the app's identity
(no keys)."""

_WRONG_CONFIG = """This Microsoft.Web/sites/config resource is `slotConfigNames` (the names of
slot-sticky app settings); the check reads properties of the web/authsettings/logs config, which
this resource does not carry. HTTP and app logs go to Log Analytics through diagnostic settings."""

SKIPS: tuple[Skip, ...] = (
    # -- App Service, every tier
    _skip("CKV_AZURE_17", SITES, ALL_TIERS, """Browser-facing site: visitors use ordinary HTTPS
          sessions; requiring client certificates would lock every browser out."""),
    _skip("CKV_AZURE_222", SITES, {"basic", "standard"}, """The site is the product's public
          endpoint (Internet -> App Service, HTTPS only); the staging slot answers the pre-swap
          health check on its own host name. Disabling public access would take them offline."""),
    _skip("CKV_AZURE_222", SITES, {"isolated"}, """Hosted in an ILB App Service Environment v3:
          the app has no public endpoint; traffic reaches it only through the internal load
          balancer (internalLoadBalancingMode Web, Publishing)."""),
    _skip("CKV_AZURE_212", SITES, BASIC, """Basic B1 runs a single instance by design: dev is the
          disposable, lowest-cost tier."""),
    _skip("CKV_AZURE_212", SITES, PRIVATE, """Instance count is set on the App Service plan
          (sku.capacity = minInstances >= 2) and held there by the autoscale profile's minimum;
          siteConfig.numberOfWorkers only applies to per-site scaling, which is off."""),
    *(_skip(check, {"web:WebAppSlotConfigurationNames"}, ALL_TIERS, _WRONG_CONFIG)
      for check in ("CKV_AZURE_13", "CKV_AZURE_63", "CKV_AZURE_65", "CKV_AZURE_66",
                    "CKV_AZURE_80", "CKV_AZURE_88", "CKV_AZURE_222")),
    _skip("CKV_AZURE_225", {"web:AppServicePlan"}, BASIC, """Basic B1 plans have no
          availability-zone support."""),
    # -- Key Vault
    _skip("CKV_AZURE_41", {"keyvault:Secret"}, ALL_TIERS, """The Flask SECRET_KEY is read through
          a Key Vault reference in app settings: an expiry date would make the reference fail and
          stop the site on that date. Rotation means replacing the generated value.""",
          when=lambda r: _secret_name(r) == "flask-secret-key"),
    _skip("CKV_AZURE_41", {"keyvault:Secret"}, PRIVATE, """The Application Gateway's self-signed
          listener certificate (a PFX): the certificate inside carries its own validity, and
          `pulumi up` issues a new one into a new secret 30 days before it ends
          (infra/gateway.py); a secret expiry would only add a second date to keep in step.""",
          when=lambda r: _secret_name(r).startswith("gateway-self-signed-")),
    _skip("CKV_AZURE_109", {"keyvault:Vault"}, BASIC, _PUBLIC_DATA),
    _skip("CKV_AZURE_189", {"keyvault:Vault"}, BASIC, _PUBLIC_DATA),
    *(_skip(check, {"keyvault:Vault"}, BASIC, """dev is disposable: without purge protection the
          vault can be destroyed and recreated under the same name. Soft delete stays on; the
          policy pack requires purge protection in every other stack.""")
      for check in ("CKV_AZURE_42", "CKV_AZURE_110")),
    # -- Application Gateway (ingress: applicationGateway)
    _skip("CKV_AZURE_135", {"network:WebApplicationFirewallPolicy"}, PRIVATE, """The check only
          recognises OWASP CRS 3.1/3.2. The policy runs Microsoft_DefaultRuleSet 2.1 (the
          successor of CRS 3.2, which keeps the Java attack group 944 and adds Microsoft's
          Log4Shell rules) with no rule group overridden, in Prevention mode; the policy pack
          (policy/rules.py) requires DRS 2.1+ or OWASP 3.2+.""",
          when=lambda r: not any(s.get("ruleGroupOverrides") for s in _rule_sets(r))),
    # -- Storage
    _skip("CKV_AZURE_59", {"storage:StorageAccount"}, BASIC, _PUBLIC_DATA, when=_photos),
    _skip("CKV_AZURE_35", {"storage:StorageAccount"}, BASIC, _PUBLIC_DATA, when=_photos),
    _skip("CKV_AZURE_206", {"storage:StorageAccount"}, BASIC, """dev holds disposable test
          photos: locally redundant storage is enough.""",
          when=lambda r: _photos(r) and _sku_name(r) == "Standard_LRS"),
    # -- The deployer's artefact account (infra/deployer.py; infra/README.md, "First deploy from
    #    empty"): the release zip and the deployment scripts' working files, nothing else.
    *(_skip(check, {"storage:StorageAccount"}, ALL_TIERS, """The deployer's artefact account:
          `pulumi up` uploads the release zip to it from outside every network (a laptop, a
          GitHub-hosted runner), so its public endpoint stays open; it holds only this
          repository's code and the deployment scripts' working files, behind TLS 1.2, with no
          anonymous access. The photos account keeps its network locked down.""",
             when=_deployment_artefacts)
      for check in ("CKV_AZURE_59", "CKV_AZURE_35")),
    _skip("CKV_AZURE_206", {"storage:StorageAccount"}, ALL_TIERS, """The deployer's artefact
          account holds release zips rebuilt from git by `make package`: losing a copy costs a
          rerun, so locally redundant storage is enough.""",
          when=lambda r: _deployment_artefacts(r) and _sku_name(r) == "Standard_LRS"),
)


def skips_for(tier: str, skips: tuple[Skip, ...] = SKIPS) -> Callable[[Resource], list[str]]:
    def comments(resource: Resource) -> list[str]:
        return [s.comment for s in skips if s.applies(resource, tier)]

    return comments
