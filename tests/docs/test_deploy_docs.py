"""The deploy documentation agrees with the code it describes.

README.md's "Before your first `pulumi up`" (providers, roles, tool versions) against the
program's resource types and role assignments; infra/README.md's configuration table against
infra/config.py's KEYS it is generated from; and the three READMEs on one deploy story.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra import config, config_table
from review import mocks
from review.resource_types import RESOURCE_TYPES
from review.stacks import SNAPSHOT_DIR, discover_stacks

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
INFRA_README = (REPO_ROOT / "infra" / "README.md").read_text(encoding="utf-8")
RELEASE_README = (REPO_ROOT / "release" / "README.md").read_text(encoding="utf-8")
REVIEW_README = (REPO_ROOT / "review" / "README.md").read_text(encoding="utf-8")
LOCATION_KEY = "azure-native:location"
# Where the deployment scripts run (Microsoft.Resources/deploymentScripts start a container
# group): a provider the subscription needs although the program declares none of its types.
USED_BY_DEPLOYMENT_SCRIPTS = {"Microsoft.ContainerInstance"}


def section(text: str, heading: str) -> str:
    assert heading in text, f"no section {heading!r}"
    start = text.index(heading)
    level = heading.split(" ", 1)[0]
    following = re.search(rf"^{level} ", text[start + len(heading):], re.MULTILINE)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def checklist() -> str:
    return section(README, "## Before your first `pulumi up`")


# --- README.md: before the first `pulumi up` ---------------------------------------------------

def test_the_provider_list_is_every_namespace_the_program_uses():
    loop = re.search(r"for namespace in ([^;]+); do\s+az provider register", checklist())
    assert loop, "README.md: no `for namespace in ...; do az provider register` loop"
    listed = loop.group(1).split()
    used = {entry.arm_type.split("/")[0] for entry in RESOURCE_TYPES.values()}
    assert sorted(listed) == listed, "keep the list sorted, so a diff shows what changed"
    assert set(listed) == used | USED_BY_DEPLOYMENT_SCRIPTS


def assigned_role_ids() -> set[str]:
    """Role definition ids of every role assignment in every committed stack's snapshot."""
    ids = set()
    for stack in discover_stacks():
        document = json.loads((SNAPSHOT_DIR / f"{stack}.json").read_text(encoding="utf-8"))
        for resource in document["resources"]:
            if resource["type"] == "azure-native:authorization:RoleAssignment":
                ids.add(resource["inputs"]["roleDefinitionId"].rsplit("/", 1)[-1])
    return ids


def test_the_role_assignment_condition_allows_exactly_the_roles_the_program_grants():
    roles = re.search(r"roles='([^']+)'", checklist())
    assert roles, "README.md: no roles='...' line for the RBAC administrator's condition"
    assert {role.strip() for role in roles.group(1).split(",")} == assigned_role_ids()
    assert checklist().count("ForAnyOfAnyValues:GuidEquals {$roles}") == 2  # write and delete


def test_roles_are_granted_on_the_subscription_because_the_program_makes_the_group():
    assert "--role Contributor --scope \"/subscriptions/$subscription\"" in checklist()
    assert "resource group is not enough" in checklist()
    for text in (README, INFRA_README, REVIEW_README, RELEASE_README):
        assert "resource-group-scoped" not in text
        assert not re.search(r"on the subscription or (on )?the stacks' resource groups", text)


def test_the_pulumi_version_named_is_the_pinned_sdk():
    pinned = re.search(r"^pulumi==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(),
                       re.MULTILINE)
    assert f"`pulumi=={pinned.group(1)}`" in checklist()


def test_the_checklist_links_the_one_time_backend_setup():
    assert "release/README.md#one-time-setup-before-the-first-ci-deploy" in checklist()
    assert "\n### One-time setup (before the first CI deploy)\n" in RELEASE_README


def test_every_config_set_step_is_followed_by_make_synth():
    for name, text in [("README.md", README), ("infra/README.md", INFRA_README)]:
        for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
            lines = block.splitlines()
            sets = [i for i, line in enumerate(lines) if line.startswith("pulumi config set")]
            if sets:
                rest = "\n".join(lines[sets[-1] + 1:])
                assert "make synth" in rest, f"{name}: `pulumi config set` without make synth"


def test_the_placeholders_the_checklist_names_are_the_committed_ones():
    dev = mocks.load_stack_config("dev")
    assert f"`alertEmail: {dev['restaurant-review:alertEmail']}`" in checklist()
    assert config.PLACEHOLDER_ADMIN_OBJECT_ID.startswith("11111111-2222-")
    assert "`postgresAdminObjectId: 11111111-2222-…`" in checklist()


# --- one deploy story across the three READMEs -----------------------------------------------

def deploy_commands(text: str) -> list[str]:
    return [line for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
            for line in block.splitlines() if re.match(r"pulumi (up|preview)\b", line)]


@pytest.mark.parametrize("name", ["README.md", "infra/README.md", "release/README.md"])
def test_every_written_pulumi_up_runs_the_policy_pack(name):
    text = (REPO_ROOT / name).read_text(encoding="utf-8")
    commands = deploy_commands(text) + re.findall(r"`(pulumi up [^`]+)`", text)
    for command in commands:
        assert "--policy-pack policy" in command, f"{name}: {command}"


def test_the_deploy_commands_are_written_once():
    assert deploy_commands(README)
    assert not deploy_commands(INFRA_README)  # it links to README.md instead


def test_no_readme_says_the_deploy_needs_no_az_cli_at_all():
    for text in (README, INFRA_README, RELEASE_README):
        assert "No az CLI" not in text
    where = section(README, "### Where `az` is needed")
    for use in ("swap", "show-log", "keyvault purge", "certificate import"):
        assert use in where


def test_the_deploy_side_installs_with_make_deploy_deps():
    assert "make deploy-deps" in section(README, "## Deploying for real")
    assert "make deploy-deps" in checklist()


# --- infra/README.md's configuration table, generated from infra/config.py's KEYS --------------

def test_the_configuration_table_is_the_generated_one():
    assert config_table.current_block() == config_table.block(), (
        "infra/README.md's configuration table is stale: run "
        "`.venv/bin/python -m infra.config_table`")


def documented_rows() -> dict[str, list[str]]:
    """key -> its other cells, from infra/README.md's "Configuration" table."""
    rows = {}
    for line in section(INFRA_README, "## Configuration").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([^`]+)`", cells[0])
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def test_every_key_is_documented_once_and_no_other():
    assert set(documented_rows()) == set(config.KNOWN_KEYS) | {LOCATION_KEY}


def is_required(key: str, valid: dict[str, str]) -> bool:
    values = {name: value for name, value in valid.items() if name != key}
    try:
        config.parse_config("docs", values.get, values.get(LOCATION_KEY), mocks.SUBSCRIPTION_ID)
    except config.ConfigError as error:
        return f"config '{key}' is required" in str(error)
    return False


MINIMAL = {"alertEmail": "ops@contoso.com",
           "postgresAdminObjectId": "0f3c2a9e-6b1d-4c8e-9a57-2d4e6f8a1b3c",
           "postgresAdminPrincipalName": "db-admins"}


def test_required_keys_are_the_ones_marked_required():
    valid = {**MINIMAL, "tier": "basic", LOCATION_KEY: "westeurope"}
    marked = {key for key, cells in documented_rows().items() if cells[0] == "— (required)"}
    assert marked == {key for key in valid if is_required(key, valid)}


@pytest.mark.parametrize("tier", config.TIERS)
def test_spelling_out_every_default_changes_nothing(tier):
    """Each documented default is accepted by its own parser and is the value the program uses."""
    spelt = {key.name: key.default_in(tier) for key in config.KEYS
             if key.default is not None and tier in key.tiers and key.requires is None}
    assert {"sku", "postgresSku", "scriptAttempt"} <= spelt.keys()
    left_out = {**MINIMAL, "tier": tier}

    def parse(values):
        return config.parse_config("docs", values.get, "westeurope", mocks.SUBSCRIPTION_ID)

    assert parse({**left_out, **spelt}) == parse(left_out)


def test_the_defaults_the_table_shows_are_the_parsed_ones():
    cfg = config.parse_config("docs", {**MINIMAL, "tier": "standard"}.get, "westeurope",
                              mocks.SUBSCRIPTION_ID)
    rows = documented_rows()
    assert rows["postgresStorageGb"][0] == f"`32` (basic), `{cfg.postgres_storage_gb}`"
    assert rows["minInstances"][0] == f"`{cfg.min_instances}`"
    assert rows["sku"][0] == f"`B1` / `{cfg.sku}` / `I1v2` by tier"


def test_the_tiers_cell_names_the_tiers_and_what_the_key_requires():
    rows = documented_rows()
    assert rows["aseSubnet"][1] == "isolated"
    assert rows["applicationGatewaySubnet"][1] == (
        "standard, isolated; with `ingress: applicationGateway`")
    assert rows["hubUseRemoteGateways"][1] == "standard, isolated; with `hubVirtualNetworkId` set"
    assert rows["tier"][1] == "all"


def test_ingress_says_none_unless_the_stack_file_sets_it():
    cell, _, allowed = documented_rows()["ingress"]
    assert cell == "`none`"
    assert "the committed `Pulumi.isolated.yaml` sets `applicationGateway`" in allowed
    isolated = mocks.load_stack_config("isolated")
    assert isolated["restaurant-review:ingress"] == "applicationGateway"


# --- infra/README.md's monthly cost of prod and isolated: rates times the committed stacks ----

HOURS_PER_MONTH = 730
CAPACITY_UNITS_PER_GATEWAY_INSTANCE = 10
COST_STACKS = {"prod": 0, "isolated": 1}  # the column of each stack in the cost table
TOTAL_ROW = "**the priced lines**"
MICROSOFT_SOURCE = re.compile(r"https://(learn\.microsoft\.com|azure\.microsoft\.com"
                              r"|azure\.github\.io/AppService|github\.com/MicrosoftDocs)/\S+")
ISO_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
BOLD_AMOUNT = re.compile(r"\*\*US\$([\d,.]+)(?:–([\d,.]+))?\*\*")


def cost_section() -> str:
    return section(INFRA_README, "### Monthly cost of `prod` and `isolated`")


def cost_rows() -> dict[str, list[str]]:
    """The cost table's cells after the line name: prod, isolated, source."""
    rows = {}
    for line in cost_section().splitlines():
        if line.startswith("| ") and not line.startswith("| line |"):
            name, *cells = (cell.strip() for cell in line.strip().strip("|").split("|"))
            rows[name] = cells
    return rows


def monthly(cell: str) -> tuple[float, float] | None:
    """The bold US$ amount or range of a cell, as (low, high); None when the cell has none."""
    match = BOLD_AMOUNT.search(cell)
    if not match:
        return None
    low = float(match.group(1).replace(",", ""))
    return low, float(match.group(2).replace(",", "")) if match.group(2) else low


def quoted_rate(row: str, pattern: str) -> float:
    source = cost_rows()[row][2]
    match = re.search(pattern, source)
    assert match, f"infra/README.md cost table, {row!r}: no rate {pattern!r} in {source!r}"
    return float(match.group(1))


def snapshot_resources(stack: str, resource_type: str) -> list[dict]:
    document = json.loads((SNAPSHOT_DIR / f"{stack}.json").read_text(encoding="utf-8"))
    return [r for r in document["resources"] if r["type"] == resource_type]


def test_every_quoted_cost_names_its_microsoft_source_and_date():
    quoted = [line for line in cost_section().splitlines() if re.search(r"US\$\d", line)]
    assert quoted
    for line in quoted:
        if line.startswith(f"| {TOTAL_ROW} |"):
            continue  # the sum of the rows above, checked against them below
        assert MICROSOFT_SOURCE.search(line), f"an amount without a Microsoft source: {line}"
        for url in re.findall(r"https?://\S+", line):
            assert MICROSOFT_SOURCE.match(url), f"a source Microsoft does not publish: {url}"
        assert ISO_DATE.search(line), f"an amount without the date of its source: {line}"


@pytest.mark.parametrize("stack", COST_STACKS)
def test_the_plan_line_is_the_instance_price_times_the_autoscale_range(stack):
    (plan,) = snapshot_resources(stack, "azure-native:web:AppServicePlan")
    (autoscale,) = snapshot_resources(stack, "azure-native:monitor:AutoscaleSetting")
    sku = plan["inputs"]["sku"]["name"]
    capacity = autoscale["inputs"]["profiles"][0]["capacity"]
    low, high = int(capacity["minimum"]), int(capacity["maximum"])
    per_instance = quoted_rate("App Service plan", rf"{sku} Linux US\$([\d.]+)/month")
    cell = cost_rows()["App Service plan"][COST_STACKS[stack]]
    assert f"{sku} × {low}–{high}" in cell
    assert monthly(cell) == pytest.approx((per_instance * low, per_instance * high), abs=0.005)


def test_the_gateway_line_is_the_fixed_price_plus_reserved_to_maximum_capacity_units():
    assert not snapshot_resources("prod", "azure-native:network:ApplicationGateway")
    (gateway,) = snapshot_resources("isolated", "azure-native:network:ApplicationGateway")
    scale = gateway["inputs"]["autoscaleConfiguration"]
    fixed = quoted_rate("Application Gateway WAF_v2", r"US\$([\d.]+)/hour fixed")
    unit = quoted_rate("Application Gateway WAF_v2", r"US\$([\d.]+) per capacity-unit hour")

    def month(instances: int) -> float:
        units = instances * CAPACITY_UNITS_PER_GATEWAY_INSTANCE
        return (fixed + unit * units) * HOURS_PER_MONTH

    prod, isolated, _ = cost_rows()["Application Gateway WAF_v2"]
    assert monthly(prod) is None
    assert monthly(isolated) == pytest.approx(
        (month(scale["minCapacity"]), month(scale["maxCapacity"])), abs=0.005)
    assert len(snapshot_resources("isolated", "azure-native:network:PublicIPAddress")) == 1


@pytest.mark.parametrize("stack", COST_STACKS)
def test_the_private_endpoint_line_is_the_hourly_price_times_the_endpoints(stack):
    endpoints = len(snapshot_resources(stack, "azure-native:network:PrivateEndpoint"))
    hourly = quoted_rate("private endpoints", r"US\$([\d.]+)/hour per endpoint")
    cell = cost_rows()["private endpoints"][COST_STACKS[stack]]
    assert cell.startswith(f"{endpoints}: ")
    expected = hourly * HOURS_PER_MONTH * endpoints
    assert monthly(cell) == pytest.approx((expected, expected), abs=0.005)


@pytest.mark.parametrize("stack", COST_STACKS)
def test_the_total_is_the_sum_of_the_priced_lines(stack):
    column = COST_STACKS[stack]
    rows = cost_rows()
    priced = [monthly(cells[column]) for name, cells in rows.items() if name != TOTAL_ROW]
    priced = [amount for amount in priced if amount]
    total = (sum(low for low, _ in priced), sum(high for _, high in priced))
    assert monthly(rows[TOTAL_ROW][column]) == pytest.approx(total, abs=0.005)
