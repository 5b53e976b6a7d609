# The failover drill (off by default): an AWS FIS experiment template that fails the Aurora cluster over to a
# reader, so a deployed stack can prove the promise in its own account. Start it, and run `sqs2pg drill`
# against the queue while it runs (README.md, "Failover drill"):
#   aws fis start-experiment --experiment-template-id "$(terraform output -raw failover_drill_template_id)"
# The template costs nothing until an experiment is started. The drill stops at once if the DLQ alarm fires
# (a good message dead-lettered during the failover would be a failed drill).

data "aws_iam_policy_document" "fis_assume" {
  count = var.enable_failover_drill ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["fis.amazonaws.com"]
    }

    # Only FIS experiments of this account may assume it (confused deputy), as for every role of the module.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment/*"]
    }
  }
}

data "aws_iam_policy_document" "fis" {
  count = var.enable_failover_drill ? 1 : 0

  # What aws:rds:failover-db-cluster needs (AWS's own AWSFaultInjectionSimulatorRDSAccess grants the same
  # actions): the failover itself on this cluster only ...
  statement {
    sid       = "FailOverThisCluster"
    actions   = ["rds:FailoverDBCluster"]
    resources = [aws_rds_cluster.this.arn]
  }

  # ... and DescribeDBClusters, which FIS calls without naming a cluster to resolve the target and follow the
  # action: allowed on one cluster's ARN only, that call is refused and the experiment fails. Read-only.
  # (tag:GetResources is needed only for targets chosen by tags; this one is chosen by ARN.)
  statement {
    sid       = "ResolveTheTarget"
    actions   = ["rds:DescribeDBClusters"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "fis" {
  count = var.enable_failover_drill ? 1 : 0

  name               = "${var.name}-failover-drill"
  description        = "${var.name}: AWS FIS fails the Aurora cluster over (sqs2pg drill)"
  assume_role_policy = data.aws_iam_policy_document.fis_assume[0].json
}

resource "aws_iam_role_policy" "fis" {
  count = var.enable_failover_drill ? 1 : 0

  name   = "failover-drill"
  role   = aws_iam_role.fis[0].id
  policy = data.aws_iam_policy_document.fis[0].json
}

resource "aws_fis_experiment_template" "failover" {
  count = var.enable_failover_drill ? 1 : 0

  description = "${var.name}: fail Aurora cluster ${var.name} over to a reader; run `sqs2pg drill` meanwhile"
  role_arn    = aws_iam_role.fis[0].arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = aws_cloudwatch_metric_alarm.dlq_not_empty.arn
  }

  action {
    name      = "failover"
    action_id = "aws:rds:failover-db-cluster"

    target {
      key   = "Clusters"
      value = "cluster"
    }
  }

  target {
    name           = "cluster"
    resource_type  = "aws:rds:cluster"
    selection_mode = "ALL"
    resource_arns  = [aws_rds_cluster.this.arn]
  }

  tags = { Name = "${var.name}-failover-drill" }

  depends_on = [aws_iam_role_policy.fis]
}
