# sqs2pg on AWS: SQS FIFO queue + DLQ, Aurora PostgreSQL (optionally behind RDS Proxy), ECS Fargate service,
# autoscaling on queue backlog, CloudWatch alarms, optional Amazon Managed Service for Prometheus.
terraform {
  # 1.5: check blocks and import blocks; preconditions (1.2+) enforce the cross-variable rules.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: target tracking with metric math (customized_metric_specification.metrics),
      # aws_vpc_security_group_*_rule, manage_master_user_password, and (since 5.64) enable_http_endpoint
      # on provisioned/Serverless v2 Aurora clusters (RDS Data API); 5.77: availability_zone_rebalancing on
      # aws_ecs_service. (6.x is a major upgrade of its own: not taken here.)
      version = "~> 5.77"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Application = var.name, ManagedBy = "terraform" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # The one HTTP port of the service: /metrics, /healthz, /readyz (HTTP_PORT).
  metrics_port = 8080
  db_port      = 5432
}
