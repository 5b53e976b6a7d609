# CloudWatch alarms on the queues (they work even when the service is down, unlike its own metrics).

locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name        = "${var.name}-dlq-not-empty"
  alarm_description = "Messages are waiting in ${local.dlq_name}: rejected by the handler (see their sqs2pg_error attributes: `sqs2pg dlq peek`) or moved by SQS after ${var.max_receive_count} receives. Fix the cause, then `sqs2pg dlq redrive`."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.dlq.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  alarm_name        = "${var.name}-oldest-message-age"
  alarm_description = "The oldest message in ${local.queue_name} has waited more than ${var.alarm_oldest_message_age_seconds} s for 5 minutes: sqs2pg is down, paused (circuit open: database unreachable), too slow (check scaling), or one message group is stuck behind a retried message."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.main.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_oldest_message_age_seconds
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "no_running_tasks" {
  alarm_name        = "${var.name}-no-running-tasks"
  alarm_description = "No ${var.name} task has been running for 5 minutes: check the ECS service events (image pull, secret, failed health checks, deployment rollback)."

  namespace   = "ECS/ContainerInsights"
  metric_name = "RunningTaskCount"
  dimensions = {
    ClusterName = aws_ecs_cluster.this.name
    ServiceName = aws_ecs_service.this.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "proxy_pinned_connections" {
  count = var.enable_rds_proxy ? 1 : 0

  alarm_name        = "${var.name}-proxy-pinned-connections"
  alarm_description = "RDS Proxy ${var.name} has kept database connections pinned to one client for 15 minutes: it is not multiplexing. sqs2pg pins nothing with SQS2PG_DB_POOLER=transaction (set by this module): check that setting in the task, and other clients of the proxy (session SET, prepared statements, advisory locks, temporary tables)."

  namespace   = "AWS/RDS"
  metric_name = "DatabaseConnectionsCurrentlySessionPinned"
  dimensions = {
    ProxyName = aws_db_proxy.this[0].name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}
