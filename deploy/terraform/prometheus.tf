# Prometheus in production. Two ways, usable together:
#  - your own Prometheus scrapes each task's :8080/metrics: set metrics_scraper_security_group_id (the only
#    source admitted to that port; empty = no ingress rule, see ecs.tf);
#  - an ADOT collector sidecar in each task scrapes localhost:8080/metrics and remote-writes (SigV4) to an
#    Amazon Managed Service for Prometheus workspace, created here (create_amp_workspace) or existing
#    (amp_workspace_id). The task role gets aps:RemoteWrite on that one workspace only when the sidecar is on.
#    With adot_traces (the default) it also takes sqs2pg's traces (OTLP/HTTP on 127.0.0.1:4318: the app
#    container's OTEL_* point there) and exports them to AWS X-Ray (the task role may put trace segments).
# The rules of docker/prometheus/alerts.yml can be loaded into AMP (aws_prometheus_rule_group_namespace).

resource "aws_prometheus_workspace" "this" {
  count = var.create_amp_workspace ? 1 : 0

  alias = var.name
}

data "aws_prometheus_workspace" "existing" {
  count = !var.create_amp_workspace && var.amp_workspace_id != null ? 1 : 0

  workspace_id = var.amp_workspace_id
}

locals {
  amp_enabled = var.create_amp_workspace || var.amp_workspace_id != null
  # sqs2pg's traces go through the sidecar to X-Ray
  traces_enabled = var.enable_adot_sidecar && var.adot_traces
  # where sqs2pg sends them (OTLP/HTTP; the collector listens on loopback only: the task's own containers)
  otlp_endpoint = "127.0.0.1:4318"

  amp_workspace_arn = (var.create_amp_workspace
    ? one(aws_prometheus_workspace.this[*].arn)
    : one(data.aws_prometheus_workspace.existing[*].arn)
  )
  # e.g. https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-.../ (it ends with a slash)
  amp_endpoint = (var.create_amp_workspace
    ? one(aws_prometheus_workspace.this[*].prometheus_endpoint)
    : one(data.aws_prometheus_workspace.existing[*].prometheus_endpoint)
  )

  # ADOT collector configuration, passed in AOT_CONFIG_CONTENT. The resourcedetection processor adds the
  # ECS task's identity (aws.ecs.task.arn, ...) and resource_to_telemetry_conversion turns it into labels,
  # so the series of two tasks never collide.
  adot_config = yamlencode({
    extensions = {
      sigv4auth = {
        region  = local.region
        service = "aps"
      }
    }
    # (each `{for ...: k => v if local.traces_enabled}` below is the traces' part: present only with adot_traces)
    receivers = merge({
      prometheus = {
        config = {
          global = {
            scrape_interval = "${var.adot_scrape_interval_seconds}s"
            scrape_timeout  = "${min(10, var.adot_scrape_interval_seconds)}s"
          }
          scrape_configs = [{
            job_name       = "sqs2pg"
            metrics_path   = "/metrics"
            static_configs = [{ targets = ["localhost:${local.metrics_port}"] }]
          }]
        }
      }
      }, { for k, v in { otlp = { protocols = { http = { endpoint = local.otlp_endpoint } } } } : k => v if local.traces_enabled }
    )
    processors = {
      resourcedetection = {
        detectors = ["env", "ecs"]
        timeout   = "5s"
        override  = false
      }
      batch = {}
    }
    exporters = merge({
      prometheusremotewrite = {
        endpoint                         = local.amp_endpoint == null ? "" : "${local.amp_endpoint}api/v1/remote_write"
        auth                             = { authenticator = "sigv4auth" }
        resource_to_telemetry_conversion = { enabled = true }
      }
      }, { for k, v in { awsxray = { region = local.region } } : k => v if local.traces_enabled }
    )
    service = {
      extensions = ["sigv4auth"]
      pipelines = merge({
        metrics = {
          receivers  = ["prometheus"]
          processors = ["resourcedetection", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
        }, { for k, v in {
          traces = { receivers = ["otlp"], processors = ["resourcedetection", "batch"], exporters = ["awsxray"] }
        } : k => v if local.traces_enabled }
      )
    }
  })
}
