"""Which credential each CI step's Pulumi and az calls use, and whether it lasts the step.

A step that runs Pulumi logs in three times, each on its own terms:

* the **provider** (pulumi-azure-native) reads the ARM_* variables;
* the **backend** (`azblob://`) and the **secrets provider** (`azurekeyvault://`) go through the
  Go cloud SDK, which reads AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN (backend only) and
  otherwise azidentity's DefaultAzureCredential: a service principal from AZURE_CLIENT_ID,
  AZURE_TENANT_ID and AZURE_CLIENT_SECRET, a token file from AZURE_FEDERATED_TOKEN_FILE, the
  machine's managed identity, then an az CLI login. ARM_* mean nothing to it.

A step that runs az (release.swap_slots shells out to it) uses the **CLI**'s own login, made by
an earlier azure/login step: its clock starts at that step, not at the step using it.

`CREDENTIALS` is the one table of credential kinds, their lifetime and where that is
documented; a step's longest run is its `timeout-minutes`. `credential_uses` reads the
workflow YAML and pairs every step with the credential each of its callers uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

# A credential that fetches a new token whenever one runs out lasts as long as the job does.
RENEWS_ITSELF = None


@dataclass(frozen=True)
class Credential:
    description: str
    lifetime_minutes: int | None  # RENEWS_ITSELF: a new token is fetched whenever one runs out
    source: str


CREDENTIALS: dict[str, Credential] = {
    "github-oidc": Credential(
        "GitHub OIDC, exchanged by the azure-native provider", RENEWS_ITSELF,
        "pulumi/pulumi-azure-native provider/pkg/provider/auth_azidentity.go: with ARM_USE_OIDC "
        "the assertion callback asks ACTIONS_ID_TOKEN_REQUEST_URL for a new GitHub token each "
        "time Entra ID is asked for a token"),
    "managed-identity": Credential(
        "the runner's managed identity", RENEWS_ITSELF,
        "https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
        "how-to-use-vm-token: tokens come from the machine's IMDS endpoint on demand"),
    "client-secret": Credential(
        "a service principal's client secret (environment secret)", RENEWS_ITSELF,
        "https://learn.microsoft.com/azure/developer/go/sdk/authentication/credential-chains "
        "(EnvironmentCredential): azidentity requests a new token from the secret whenever one "
        "expires, until the secret's own end date (rotated ahead of it, release/README.md)"),
    "storage-key": Credential(
        "a storage account key", RENEWS_ITSELF,
        "https://www.pulumi.com/docs/iac/concepts/state/ (AZURE_STORAGE_KEY): valid until the "
        "key is rotated"),
    "storage-sas": Credential(
        "a storage SAS token", RENEWS_ITSELF,
        "https://www.pulumi.com/docs/iac/concepts/state/ (AZURE_STORAGE_SAS_TOKEN): valid until "
        "its signed expiry (se=), which whoever issues it sets past the next rotation"),
    "federated-token-file": Credential(
        "a GitHub OIDC token written to AZURE_FEDERATED_TOKEN_FILE", 60,
        "GitHub's ID token expires 5 minutes after issue (Azure/login#372); the Entra token it "
        "buys lasts 60-90 minutes (https://learn.microsoft.com/entra/identity-platform/"
        "access-tokens#access-token-lifetime); azidentity re-reads the file only every 10 minutes "
        "(Azure/azure-sdk-for-go sdk/azidentity/workload_identity.go), so not even a file "
        "rewritten in the background holds a token that is still valid at renewal"),
    "az-cli-oidc": Credential(
        "an az CLI login from a GitHub OIDC token (azure/login)", 60,
        "Azure/login#180, #290, #372: the access token lasts 60-90 minutes and cannot be renewed "
        "once the GitHub token behind it has expired (AADSTS700024)"),
    "az-cli-identity": Credential(
        "an az CLI login as the runner's managed identity (azure/login auth-type IDENTITY)",
        RENEWS_ITSELF,
        "https://learn.microsoft.com/cli/azure/authenticate-azure-cli-managed-identity: the CLI "
        "asks the machine's IMDS endpoint again when its token runs out"),
    "none": Credential(
        "nothing: no variable or earlier login gives this a credential", 0,
        "pulumi/pulumi#13476, pulumi/docs#18272: ARM_* do not reach the backend or the "
        "secrets provider"),
}

ROLES = ("provider", "backend", "secrets provider", "CLI")
# The values deploy-stack.yml's azure-auth input takes; only `identity` runs on a machine with
# a managed identity (an optional self-hosted runner).
AUTH_MODES = ("oidc", "identity")
PROGRAM_COMMANDS = ("up", "preview", "refresh", "destroy")  # the ones that start the provider
GITHUB_JOB_LIMIT_MINUTES = 360  # a job without timeout-minutes

PULUMI_COMMAND = re.compile(r"(?:^|[;&|]|\$\()\s*pulumi\s+(\S+)", re.MULTILINE)
AZ_COMMAND = re.compile(r"(?:^|[;&|]|\$\()\s*az\s+\S", re.MULTILINE)
SWAP_MODULE = "release.swap_slots"  # shells out to az


@dataclass(frozen=True)
class Use:
    """One role's credential in one step, for one caller and auth mode."""

    workflow: str
    job: str
    step: str
    variant: str
    role: str
    credential: str
    needed_minutes: int  # from the credential's login to the end of this step's longest run

    @property
    def lifetime_minutes(self) -> int | None:
        return CREDENTIALS[self.credential].lifetime_minutes

    @property
    def expires_early(self) -> bool:
        lifetime = self.lifetime_minutes
        return lifetime is not RENEWS_ITSELF and lifetime < self.needed_minutes

    def __str__(self) -> str:
        lifetime = self.lifetime_minutes
        lasts = "renews itself" if lifetime is RENEWS_ITSELF else f"lasts {lifetime} min"
        return (f"{self.workflow} {self.job} / {self.step} [{self.variant}]: {self.role} uses "
                f"{CREDENTIALS[self.credential].description} ({lasts}), needed for "
                f"{self.needed_minutes} min")


# --- GitHub expressions, as far as the workflows' credential settings use them ---------------

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
TOKEN = re.compile(r"\s*(?:('[^']*')|(\d+)|(==|!=|&&|\|\||!|\(|\))|([A-Za-z_][\w.-]*))")
OPERATORS = {"&&": " and ", "||": " or ", "!": " not ", "==": "==", "!=": "!=", "(": "(", ")": ")"}
LITERALS = {"true": True, "false": False, "null": None}


class UnknownContext(Exception):
    """The expression reads a context this module does not model (github, steps, ...)."""


def evaluate(expression: str, inputs: Mapping[str, object],
             configured: Mapping[str, str] | None = None, secrets_passed: bool = True) -> object:
    """`inputs.*` from the caller; `vars.*`/`secrets.*` from `configured` (absent: empty), or,
    without it, as set and non-empty. A reusable workflow whose caller passes no secrets sees
    every `secrets.*` empty, its own environment's too (actions/runner#1490)."""
    python, names = [], {}
    position = 0
    expression = expression.strip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read the expression {expression!r} at {position}")
        string, number, operator, reference = match.groups()
        position = match.end()
        if string is not None:
            python.append(repr(string[1:-1]))
        elif number is not None:
            python.append(number)
        elif operator is not None:
            python.append(OPERATORS[operator])
        else:
            name = f"_{len(names)}"
            names[name] = reference_value(reference, inputs, configured, secrets_passed)
            python.append(name)
    return eval("".join(python), {"__builtins__": {}}, names)  # noqa: S307 - tokens checked above


def reference_value(reference: str, inputs: Mapping[str, object],
                    configured: Mapping[str, str] | None = None,
                    secrets_passed: bool = True) -> object:
    if reference in LITERALS:
        return LITERALS[reference]
    context, _, name = reference.partition(".")
    if context == "inputs":
        return inputs.get(name, "")
    if context == "secrets" and not secrets_passed:
        return ""
    if context in ("vars", "secrets"):
        return f"<{reference}>" if configured is None else configured.get(reference, "")
    raise UnknownContext(reference)


def as_text(value: object) -> str:
    """What GitHub puts in an environment variable for an expression's value."""
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def resolve(value: object, inputs: Mapping[str, object],
            configured: Mapping[str, str] | None = None, secrets_passed: bool = True) -> str:
    """An environment value as the step sees it; other contexts stay as a non-empty marker."""
    def one(match: re.Match) -> str:
        try:
            return as_text(evaluate(match.group(1), inputs, configured, secrets_passed))
        except UnknownContext as context:
            return f"<{context}>"
    return EXPRESSION.sub(one, str(value))


def runs(step: dict, inputs: Mapping[str, object]) -> bool:
    """A step's `if`, when it reads only inputs; anything else is taken to run."""
    condition = step.get("if")
    if condition is None:
        return True
    inner = EXPRESSION.fullmatch(condition.strip())
    try:
        return bool(evaluate(inner.group(1) if inner else condition, inputs))
    except UnknownContext:
        return True


def longest_minutes(value: object, raw_inputs: Mapping[str, object]) -> int:
    """The largest number a `timeout-minutes` can take, through the callers' inputs."""
    text = str(value)
    for name in re.findall(r"inputs\.([\w-]+)", text):
        text += f" {raw_inputs.get(name, '')}"
    numbers = [int(n) for n in re.findall(r"\b\d+\b", text.replace("inputs.", ""))]
    if not numbers:
        raise ValueError(f"timeout-minutes {value!r} names no number")
    return max(numbers)


# --- which steps log in where ------------------------------------------------------------------

def pulumi_commands(step: dict) -> list[str]:
    if step.get("uses", "").startswith("pulumi/actions@"):
        return [step.get("with", {}).get("command", "up")]
    return PULUMI_COMMAND.findall(step.get("run", ""))


def runs_az(step: dict) -> bool:
    run = step.get("run", "")
    return bool(AZ_COMMAND.search(run)) or SWAP_MODULE in run


def roles(step: dict) -> list[str]:
    commands = pulumi_commands(step)
    used = []
    if any(command in PROGRAM_COMMANDS for command in commands):
        used.append("provider")
    if commands:
        used += ["backend", "secrets provider"]
    if runs_az(step):
        used.append("CLI")
    return used


def cli_login(step: dict) -> str | None:
    if not step.get("uses", "").startswith("azure/login@"):
        return None
    identity = step.get("with", {}).get("auth-type") == "IDENTITY"
    return "az-cli-identity" if identity else "az-cli-oidc"


def default_azure_credential(env: Mapping[str, str], login: str | None, identity: bool) -> str:
    if all(env.get(name) for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")):
        return "client-secret"
    if env.get("AZURE_FEDERATED_TOKEN_FILE"):
        return "federated-token-file"
    if identity:
        return "managed-identity"
    return login or "none"


def credential_for(role: str, env: Mapping[str, str], login: str | None, identity: bool,
                   oidc_allowed: bool) -> str:
    if role == "provider":
        if env.get("ARM_CLIENT_SECRET"):
            return "client-secret"
        if env.get("ARM_USE_OIDC") == "true":
            return "github-oidc" if oidc_allowed else "none"
        if env.get("ARM_USE_MSI") == "true":
            return "managed-identity"
        return login or "none"
    if role == "backend":
        if env.get("AZURE_STORAGE_KEY"):
            return "storage-key"
        if env.get("AZURE_STORAGE_SAS_TOKEN"):
            return "storage-sas"
    if role in ("backend", "secrets provider"):
        return default_azure_credential(env, login, identity)
    return login or "none"


# --- reading the workflows ---------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    name: str
    inputs: dict  # evaluated, with azure-auth set to one mode
    raw_inputs: dict  # as the caller wrote them (for timeouts)
    # Only `secrets: inherit` brings the called job's environment secrets: a mapping is read in
    # the caller's job, which names no environment (actions/runner#1490).
    secrets_passed: bool = True


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def variants(name: str, workflows: Mapping[str, dict]) -> list[Variant]:
    """One per caller and auth mode for a reusable workflow; one plain run otherwise."""
    callers = [(wf, job_name, job) for wf, doc in workflows.items()
               for job_name, job in doc["jobs"].items()
               if job.get("uses", "").endswith(f"/{name}")]
    if not callers:
        return [Variant("", {}, {})]
    found = []
    for workflow, job_name, job in callers:
        raw = dict(job.get("with", {}))
        auth = str(raw.get("azure-auth", "oidc"))
        modes = [auth] if auth in AUTH_MODES else list(AUTH_MODES)  # a variable may pick either
        for mode in modes:
            inputs = {key: evaluate_input(value) for key, value in raw.items()}
            inputs["azure-auth"] = mode
            found.append(Variant(f"{workflow} {job_name}, azure-auth={mode}", inputs, raw,
                                 secrets_passed=job.get("secrets") == "inherit"))
    return found


def evaluate_input(value: object) -> object:
    inner = EXPRESSION.fullmatch(value.strip()) if isinstance(value, str) else None
    return evaluate(inner.group(1), {}) if inner else value


def oidc_allowed(doc: dict, job: dict) -> bool:
    permissions = job.get("permissions", doc.get("permissions", {})) or {}
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"


def step_name(step: dict, index: int) -> str:
    return step.get("name") or step.get("uses") or f"step {index + 1}"


def job_steps(workflows_dir: Path) -> Iterator[tuple[str, str, dict, dict, Variant]]:
    workflows = {path.name: load(path) for path in sorted(workflows_dir.glob("*.yml"))}
    for name, doc in workflows.items():
        for variant in variants(name, workflows):
            for job_name, job in doc["jobs"].items():
                if "steps" in job:
                    yield name, job_name, doc, job, variant


def credential_uses(workflows_dir: Path) -> list[Use]:
    uses = []
    for name, job_name, doc, job, variant in job_steps(workflows_dir):
        job_limit = longest_minutes(job.get("timeout-minutes", GITHUB_JOB_LIMIT_MINUTES),
                                    variant.raw_inputs)
        env = {**doc.get("env", {}), **job.get("env", {})}
        identity = variant.inputs.get("azure-auth") == "identity"
        login, login_elapsed = None, 0
        for index, step in enumerate(job["steps"]):
            if not runs(step, variant.inputs):
                continue
            step_limit = step.get("timeout-minutes")
            minutes = job_limit if step_limit is None else longest_minutes(step_limit,
                                                                           variant.raw_inputs)
            login_elapsed += minutes
            if cli_login(step):
                login, login_elapsed = cli_login(step), minutes
                continue
            step_env = {key: resolve(value, variant.inputs, secrets_passed=variant.secrets_passed)
                        for key, value in {**env, **step.get("env", {})}.items()}
            for role in roles(step):
                credential = credential_for(role, step_env, login, identity,
                                            oidc_allowed(doc, job))
                needed = login_elapsed if credential == login else minutes
                uses.append(Use(name, job_name, step_name(step, index), variant.name, role,
                                credential, needed))
    return uses


def steps_without_timeout(workflows_dir: Path) -> list[str]:
    """Steps that run Pulumi or az must say how long they may run."""
    missing = set()
    for name, job_name, _doc, job, _variant in job_steps(workflows_dir):
        for index, step in enumerate(job["steps"]):
            if roles(step) and "timeout-minutes" not in step:
                missing.add(f"{name} {job_name} / {step_name(step, index)}")
    return sorted(missing)


def main() -> int:
    """Print every step's credentials; exit 1 when one can expire before its step ends."""
    workflows = Path(__file__).resolve().parents[1] / ".github" / "workflows"
    uses = credential_uses(workflows)
    for use in uses:
        print(("EXPIRES " if use.expires_early else "ok      ") + str(use))
    for step in steps_without_timeout(workflows):
        print(f"NO TIMEOUT {step}")
    return int(any(use.expires_early for use in uses) or bool(steps_without_timeout(workflows)))


if __name__ == "__main__":
    raise SystemExit(main())
