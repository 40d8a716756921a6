"""Log Analytics, workspace-based Application Insights, diagnostics, alerts and autoscale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights, web

from infra.context import Context
from infra.data import DataServices

if TYPE_CHECKING:  # the app's settings read Telemetry, Monitoring watches the app
    from infra.app import AppService

SITE_LOG_CATEGORIES = ("AppServiceHTTPLogs", "AppServiceConsoleLogs", "AppServiceAppLogs")


@dataclass(frozen=True)
class Alert:
    key: str
    metric: str
    aggregation: str
    operator: str
    threshold: float
    severity: int
    description: str


ALERTS = (
    Alert("http-5xx", "Http5xx", "Total", "GreaterThan", 10, 1,
          "More than 10 server errors in 5 minutes"),
    Alert("health-check", "HealthCheckStatus", "Average", "LessThan", 100, 1,
          "An instance fails its health check"),
    Alert("response-time", "HttpResponseTime", "Average", "GreaterThan", 2, 2,
          "Average response time above 2 seconds over 5 minutes"),
)


@dataclass(frozen=True)
class TelemetryArgs:
    ctx: Context
    log_retention_days: int  # how long the workspace keeps logs (config logRetentionDays)


class Telemetry(pulumi.ComponentResource):
    """Log Analytics and the workspace-based Application Insights the app reports to."""

    workspace: operationalinsights.Workspace
    insights: applicationinsights.Component

    def __init__(self, name: str, args: TelemetryArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:monitoring:Telemetry", name, None, opts)
        ctx = args.ctx
        self.workspace = operationalinsights.Workspace(
            "log-analytics",
            workspace_name=ctx.names.log_workspace,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=args.log_retention_days,
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.insights = applicationinsights.Component(
            "app-insights",
            resource_name_=ctx.names.app_insights,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            kind="web",
            application_type="web",
            workspace_resource_id=self.workspace.id,
            ingestion_mode="LogAnalytics",
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"workspaceId": self.workspace.id,
                               "insightsId": self.insights.id})

    @property
    def connection_string(self) -> pulumi.Output[str]:
        return self.insights.connection_string


def diagnostics(ctx: Context, key: str, resource_uri: pulumi.Output[str],
                workspace_id: pulumi.Input[str], parent: pulumi.Resource,
                categories: tuple[str, ...] = (), category_group: str | None = None,
                metrics: bool = True) -> monitor.DiagnosticSetting:
    """A resource's logs (these categories, or a category group) and metrics sent to the
    stack's Log Analytics workspace."""
    logs = [monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in categories]
    if category_group:
        logs.append(monitor.DiagnosticsLogSettingsArgs(category_group=category_group,
                                                       enabled=True))
    return monitor.DiagnosticSetting(
        f"diag-{key}",
        name=f"to-{ctx.names.log_workspace}",
        resource_uri=resource_uri,
        workspace_id=workspace_id,
        log_analytics_destination_type="Dedicated",
        logs=logs,
        metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)]
        if metrics else None,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def create_alerts(ctx: Context, app: web.WebApp, alert_email: str, parent: pulumi.Resource,
                  after: tuple[pulumi.Resource, ...] = ()) -> list[monitor.MetricAlert]:
    group = monitor.ActionGroup(
        "alerts-action-group",
        action_group_name=f"ag-{ctx.names.base}",
        resource_group_name=ctx.rg_name,
        location="Global",
        group_short_name=f"rr{ctx.stack}"[:12],
        enabled=True,
        email_receivers=[monitor.MicrosoftCommonEmailReceiverArgs(
            name="on-call", email_address=alert_email, use_common_alert_schema=True)],
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return [_metric_alert(ctx, app, group, alert, parent, after) for alert in ALERTS]


def _metric_alert(ctx: Context, app: web.WebApp, group: monitor.ActionGroup, alert: Alert,
                  parent: pulumi.Resource,
                  after: tuple[pulumi.Resource, ...]) -> monitor.MetricAlert:
    return monitor.MetricAlert(
        f"alert-{alert.key}",
        rule_name=f"alert-{ctx.names.base}-{alert.key}",
        resource_group_name=ctx.rg_name,
        location="global",
        description=alert.description,
        severity=alert.severity,
        enabled=True,
        scopes=[app.id],
        evaluation_frequency="PT1M",
        window_size="PT5M",
        auto_mitigate=True,
        criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
            odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
            all_of=[monitor.MetricCriteriaArgs(
                name=alert.metric,
                criterion_type="StaticThresholdCriterion",
                metric_name=alert.metric,
                metric_namespace="Microsoft.Web/sites",
                operator=alert.operator,
                threshold=alert.threshold,
                time_aggregation=alert.aggregation,
            )],
        ),
        actions=[monitor.MetricAlertActionArgs(action_group_id=group.id)],
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after) or None),
    )


def _cpu_rule(plan_id, operator: str, threshold: float, direction: str, window: str,
              cooldown: str) -> monitor.ScaleRuleArgs:
    return monitor.ScaleRuleArgs(
        metric_trigger=monitor.MetricTriggerArgs(
            metric_name="CpuPercentage",
            metric_resource_uri=plan_id,
            operator=operator,
            statistic="Average",
            threshold=threshold,
            time_aggregation="Average",
            time_grain="PT1M",
            time_window=window,
        ),
        scale_action=monitor.ScaleActionArgs(direction=direction, type="ChangeCount", value="1",
                                             cooldown=cooldown),
    )


@dataclass(frozen=True)
class InstanceRange:
    """How far CPU autoscale moves the plan's instance count (config minInstances,
    maxInstances); it starts at the minimum."""

    minimum: int
    maximum: int


def create_autoscale(ctx: Context, plan: web.AppServicePlan, instances: InstanceRange,
                     parent: pulumi.Resource) -> monitor.AutoscaleSetting:
    return monitor.AutoscaleSetting(
        "autoscale",
        autoscale_setting_name=f"autoscale-{ctx.names.plan}",
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        enabled=True,
        target_resource_uri=plan.id,
        profiles=[monitor.AutoscaleProfileArgs(
            name="cpu",
            capacity=monitor.ScaleCapacityArgs(minimum=str(instances.minimum),
                                               maximum=str(instances.maximum),
                                               default=str(instances.minimum)),
            # Out fast on sustained load, in slowly so a spike doesn't flap the instance count.
            rules=[
                _cpu_rule(plan.id, "GreaterThan", 70, "Increase", "PT5M", "PT5M"),
                _cpu_rule(plan.id, "LessThan", 30, "Decrease", "PT10M", "PT10M"),
            ],
        )],
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class MonitoringArgs:
    ctx: Context
    telemetry: Telemetry
    data: DataServices
    service: AppService
    alert_email: str  # who the metric alerts mail (config alertEmail)
    # The plan's autoscale range; None: the tier does not autoscale.
    autoscale: InstanceRange | None
    # The first package deploy: until production runs the app, its health check and error
    # metrics describe an empty site, and alerts created earlier would page for nothing.
    alerts_after: tuple[pulumi.Resource, ...] = ()


class Monitoring(pulumi.ComponentResource):
    """What watches the running app: diagnostic settings into the workspace, metric alerts on
    the production app and, on the tiers that have it, CPU autoscale of the plan."""

    alerts: list[monitor.MetricAlert]
    autoscale: monitor.AutoscaleSetting | None

    def __init__(self, name: str, args: MonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:monitoring:Monitoring", name, None, opts)
        ctx, telemetry, data, service = args.ctx, args.telemetry, args.data, args.service
        workspace_id = telemetry.workspace.id
        for site in service.sites:
            diagnostics(ctx, f"site-{site.key}", site.resource.id, workspace_id, self,
                        SITE_LOG_CATEGORIES)
        diagnostics(ctx, "key-vault", data.vault.id, workspace_id, self,
                    category_group="audit")
        diagnostics(ctx, "postgres", data.postgres.id, workspace_id, self,
                    category_group="allLogs")
        self.alerts = create_alerts(ctx, service.app.resource, args.alert_email, self,
                                    args.alerts_after)
        self.autoscale = (create_autoscale(ctx, service.plan, args.autoscale, self)
                          if args.autoscale else None)
        self.register_outputs({"alertIds": [alert.id for alert in self.alerts]})
