"""The rules wrapped as CrossGuard policies; building them starts nothing (unlike PolicyPack)."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import (
    RULES,
    Rule,
    check_every_gateway_has_a_prevention_waf,
    check_every_site_has_basic_auth_off,
)

PACK_NAME = "restaurant-review-baseline"


def _config_schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config_defaults:
        return None
    defaults = rule.config_defaults.items()
    return PolicyConfigSchema(
        properties={key: {"type": "boolean", "default": value} for key, value in defaults})


def _validator(rule: Rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule(args.resource_type, args.props, args.opts, args.get_config()):
            report_violation(message, None)

    return validate


def _every_site_has_basic_auth_off(args: StackValidationArgs,
                                   report_violation: ReportViolation) -> None:
    resources = [(resource.resource_type, resource.props) for resource in args.resources]
    for message in check_every_site_has_basic_auth_off(resources):
        report_violation(message, None)


def _every_gateway_has_a_prevention_waf(args: StackValidationArgs,
                                        report_violation: ReportViolation) -> None:
    resources = [(resource.resource_type, resource.props) for resource in args.resources]
    for message in check_every_gateway_has_a_prevention_waf(resources):
        report_violation(message, None)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    per_resource = [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=_config_schema(rule),
        )
        for rule in RULES
    ]
    stack_wide = StackValidationPolicy(
        name="every-site-basic-auth-off",
        description="Every web app and slot has its FTP and SCM basic-auth publishing switched "
                    "off by a policy resource of its own.",
        validate=_every_site_has_basic_auth_off,
        enforcement_level=EnforcementLevel.MANDATORY,
    )
    gateways = StackValidationPolicy(
        name="every-gateway-prevention-waf",
        description="Every Application Gateway uses a WAF policy of the stack that is in "
                    "Prevention mode.",
        validate=_every_gateway_has_a_prevention_waf,
        enforcement_level=EnforcementLevel.MANDATORY,
    )
    return [*per_resource, stack_wide, gateways]
