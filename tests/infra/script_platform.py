"""Deployment scripts over several `pulumi up` runs: ARM's rules, azure-native's, Pulumi's.

What each fake does, and where the rule comes from:

* `DeploymentScripts` (ARM, Microsoft.Resources/deploymentScripts): a PUT whose properties are
  all unchanged does not run the script again, whatever the last run's outcome; any change
  (content, forceUpdateTag, ...) runs it. After a run ends, the script resource stays for its
  `retentionInterval`, then ARM deletes it; its container is deleted at once unless
  `cleanupPreference` keeps it (`OnSuccess`: kept after a failure, `OnExpiration`: kept until
  the resource goes). Source: learn.microsoft.com, "Develop a deployment script in Bicep" ("Run a
  script more than once", "Clean up deployment script resources").
* `AzureNative` (pulumi-azure-native): a create first looks the resource up and refuses one that
  exists ("cannot create already existing resource": pulumi/pulumi-azure-native#1123, #4761).
  A create whose long-running operation fails is either recorded in the stack with an
  initialisation error (pulumi/pulumi-azure-native#1015) or, when the run died first, not at
  all; `records_failed_creates` picks which.
* `Stack` (the Pulumi engine): a resource not in state is created; a changed name replaces it
  (create the new one, then delete the old); changed inputs, or an initialisation error left by
  the last run (pulumi/pulumi#1836), update it in place; otherwise nothing happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

# The properties of a script resource as the program declares them (CapturedResource.inputs).
Inputs = Mapping[str, object]
Runner = Callable[[Inputs], bool]  # runs the script's content; True when it exits 0

_DURATION = re.compile(r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$")


def iso_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration ARM takes for retentionInterval: {text!r}")
    return timedelta(**{unit: int(value) for unit, value in match.groupdict().items() if value})


class ScriptFailed(Exception):
    """The script ran (or had run) and ended Failed."""


class AlreadyExists(Exception):
    """azure-native's refusal to create over an existing Azure resource."""


@dataclass
class ScriptResource:
    properties: dict
    state: str  # "Succeeded" or "Failed"
    ended_at: timedelta
    container_kept: bool


@dataclass
class DeploymentScripts:
    """ARM's deploymentScripts in one resource group, on a clock the test moves."""

    runner: Runner
    now: timedelta = timedelta(0)
    scripts: dict[str, ScriptResource] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)  # names, in the order they ran

    def get(self, name: str) -> ScriptResource | None:
        return self.scripts.get(name)

    def put(self, name: str, properties: Inputs) -> str:
        existing = self.scripts.get(name)
        if existing is not None and existing.properties == dict(properties):
            return existing.state  # nothing changed: no new run
        self.runs.append(name)
        succeeded = self.runner(properties)
        preference = str(properties.get("cleanupPreference", "Always"))
        kept = (preference == "OnExpiration"
                or (preference == "OnSuccess" and not succeeded))
        self.scripts[name] = ScriptResource(dict(properties),
                                            "Succeeded" if succeeded else "Failed",
                                            self.now, kept)
        return self.scripts[name].state

    def delete(self, name: str) -> None:
        self.scripts.pop(name, None)

    def advance(self, interval: timedelta) -> None:
        self.now += interval
        for name, script in list(self.scripts.items()):
            retention = iso_duration(str(script.properties.get("retentionInterval", "P1D")))
            if self.now >= script.ended_at + retention:
                del self.scripts[name]


@dataclass
class StateEntry:
    inputs: dict
    init_error: bool


@dataclass
class AzureNative:
    """The provider's create/update/delete of a deployment script."""

    arm: DeploymentScripts
    records_failed_creates: bool

    def create(self, inputs: Inputs) -> StateEntry:
        name = str(inputs["scriptName"])
        if self.arm.get(name) is not None:
            raise AlreadyExists(f"cannot create already existing resource {name}")
        if self.arm.put(name, inputs) == "Succeeded":
            return StateEntry(dict(inputs), init_error=False)
        if self.records_failed_creates:
            return StateEntry(dict(inputs), init_error=True)
        raise ScriptFailed(name)

    def update(self, inputs: Inputs) -> StateEntry:
        state = self.arm.put(str(inputs["scriptName"]), inputs)
        return StateEntry(dict(inputs), init_error=state != "Succeeded")

    def delete(self, inputs: Inputs) -> None:
        self.arm.delete(str(inputs["scriptName"]))


@dataclass
class Stack:
    """The engine's decisions for the script resources, keyed by URN."""

    provider: AzureNative
    state: dict[str, StateEntry] = field(default_factory=dict)

    def up(self, declared: Sequence[tuple[str, Inputs]]) -> list[str]:
        """Declared: (urn, inputs) in dependency order. Stops at the first failure, as the
        engine does for what depends on it. Returns the errors (empty: the update succeeded)."""
        for urn, inputs in declared:
            try:
                self._step(urn, inputs)
            except (ScriptFailed, AlreadyExists) as error:
                return [f"{urn}: {type(error).__name__}: {error}"]
        return []

    def _step(self, urn: str, inputs: Inputs) -> None:
        old = self.state.get(urn)
        if old is None:
            self.state[urn] = self._recorded(self.provider.create(inputs), urn)
        elif old.inputs["scriptName"] != inputs["scriptName"]:
            self.state[urn] = self._recorded(self.provider.create(inputs), urn)
            self.provider.delete(old.inputs)
        elif old.inputs != dict(inputs) or old.init_error:
            self.state[urn] = self._recorded(self.provider.update(inputs), urn)

    def _recorded(self, entry: StateEntry, urn: str) -> StateEntry:
        if entry.init_error:
            self.state[urn] = entry
            raise ScriptFailed(f"{entry.inputs['scriptName']} failed to initialise")
        return entry
