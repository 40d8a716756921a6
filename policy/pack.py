"""The rules wrapped as CrossGuard policies; building them starts nothing (unlike PolicyPack)."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.rules import RULES, Rule

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


def policies() -> list[ResourceValidationPolicy]:
    return [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=_config_schema(rule),
        )
        for rule in RULES
    ]
