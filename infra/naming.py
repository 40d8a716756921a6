"""Azure resource names, derived once from the stack config.

Explicit names (not Pulumi auto-names) because the app settings, the SQL step and the deploy
command need them before the resources exist, and globally unique ones (storage, vault, web app,
PostgreSQL) carry the stack's suffix so two stacks or two people never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from infra.config import StackConfig


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass(frozen=True)
class Names:
    base: str  # e.g. "rr-prod"
    unique: str  # e.g. "rr-prod-3f9a1c"

    @classmethod
    def for_stack(cls, cfg: StackConfig) -> Names:
        base = f"{cfg.name_prefix}-{cfg.stack}"
        return cls(base=base, unique=f"{base}-{cfg.name_suffix}")

    def generation(self, token: str) -> Names:
        """These names with `token` appended to the suffix, for a stack recreated under new
        globally unique names (infra/data.py recreatable_names)."""
        return replace(self, unique=self.unique + token)

    @property
    def resource_group(self) -> str:
        return f"rg-{self.base}"

    @property
    def web_app(self) -> str:
        return f"app-{self.unique}"

    @property
    def plan(self) -> str:
        return f"asp-{self.base}"

    @property
    def storage_account(self) -> str:
        # 3-24 lowercase letters and digits: keep the suffix, trim the base.
        suffix = _alnum(self.unique.rsplit("-", 1)[1])
        return ("st" + _alnum(self.base))[: 24 - len(suffix)] + suffix

    @property
    def deployer_storage_account(self) -> str:
        # The deployer's own account (package + deployment script files): "dep" marks it apart
        # from the photos account, same 24-character limit, same suffix.
        suffix = _alnum(self.unique.rsplit("-", 1)[1])
        return ("st" + _alnum(self.base))[: 24 - len(suffix) - 3] + "dep" + suffix

    @property
    def deployer_identity(self) -> str:
        # Also its PostgreSQL administrator role name.
        return f"id-{self.base}-deployer"

    def site_identity(self, site_key: str) -> str:
        """The user-assigned identity of the app ("app") or a slot (its name)."""
        return f"id-{self.web_app}" if site_key == "app" else f"id-{self.web_app}-{site_key}"

    @property
    def key_vault(self) -> str:
        # 3-24 characters; keep the suffix for uniqueness.
        base, suffix = self.unique.rsplit("-", 1)
        return f"kv-{base}"[: 23 - len(suffix)].rstrip("-") + "-" + suffix

    @property
    def postgres_server(self) -> str:
        return f"psql-{self.unique}"

    @property
    def database(self) -> str:
        return "restaurant_reviews"

    @property
    def log_workspace(self) -> str:
        return f"log-{self.base}"

    @property
    def app_insights(self) -> str:
        return f"appi-{self.base}"

    @property
    def vnet(self) -> str:
        return f"vnet-{self.base}"

    @property
    def ase(self) -> str:
        # ASE names become DNS labels of <name>.appserviceenvironment.net: short and unique.
        return f"ase-{self.unique}"[:36].rstrip("-")
