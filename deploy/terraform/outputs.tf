output "queue_url" {
  description = "URL of the FIFO queue (SQS_QUEUE_URLS); producers send here."
  value       = aws_sqs_queue.main.url
}

output "queue_arn" {
  description = "ARN of the FIFO queue (grant producers sqs:SendMessage on it)."
  value       = aws_sqs_queue.main.arn
}

output "dlq_url" {
  description = "URL of the FIFO dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the FIFO dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "db_cluster_arn" {
  description = "ARN of the Aurora cluster (for `aws rds-data execute-statement --resource-arn`)."
  value       = aws_rds_cluster.this.arn
}

output "db_cluster_endpoint" {
  description = "Aurora writer (cluster) endpoint."
  value       = aws_rds_cluster.this.endpoint
}

output "db_reader_endpoint" {
  description = "Aurora reader endpoint."
  value       = aws_rds_cluster.this.reader_endpoint
}

output "db_proxy_endpoint" {
  description = "RDS Proxy endpoint (null when enable_rds_proxy is false)."
  value       = var.enable_rds_proxy ? aws_db_proxy.this[0].endpoint : null
}

output "database_host" {
  description = "The host to put in DATABASE_URL: the proxy endpoint when the proxy is enabled, else the cluster endpoint."
  value       = local.database_host
}

output "database_url_tls" {
  description = "The query string DATABASE_URL should end with: through RDS Proxy, sslmode=verify-full&sslrootcert=system (its ACM certificate chains to the system's CAs); straight to Aurora, sslmode=require (README, \"TLS\": verify-full needs the RDS CA bundle in the image)."
  value       = var.enable_rds_proxy ? "sslmode=verify-full&sslrootcert=system" : "sslmode=require"
}

output "db_name" {
  description = "Database name."
  value       = aws_rds_cluster.this.database_name
}

output "db_master_secret_arn" {
  description = "Secrets Manager secret of the master user (managed and rotated by RDS)."
  value       = local.master_secret_arn
}

output "app_database_secret_arn" {
  description = "Secrets Manager secret to fill with {username, password, DATABASE_URL} of the application user (README)."
  value       = aws_secretsmanager_secret.app_database.arn
}

output "ecr_repository_url" {
  description = "ECR repository to push the sqs2pg image to."
  value       = aws_ecr_repository.this.repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "task_definition_arn" {
  description = "Task definition of the service (also used for the one-off migrate task)."
  value       = aws_ecs_task_definition.this.arn
}

output "service_security_group_id" {
  description = "Security group of the sqs2pg tasks."
  value       = aws_security_group.service.id
}

output "run_task_network_configuration" {
  description = "--network-configuration for `aws ecs run-task` (the one-off migrate task): the service's subnets and security group, no public IP."
  value = jsonencode({
    awsvpcConfiguration = {
      subnets        = var.private_subnet_ids
      securityGroups = [aws_security_group.service.id]
      assignPublicIp = "DISABLED"
    }
  })
}

output "amp_workspace_endpoint" {
  description = "Prometheus endpoint of the AMP workspace (null when none); remote write goes to <endpoint>api/v1/remote_write, queries to <endpoint>api/v1/query."
  value       = local.amp_endpoint
}

output "log_group_name" {
  description = "CloudWatch log group of the service (JSON log lines)."
  value       = aws_cloudwatch_log_group.service.name
}

output "failover_drill_template_id" {
  description = "The AWS FIS experiment template that fails the cluster over (enable_failover_drill), or null: aws fis start-experiment --experiment-template-id <this>, then sqs2pg drill."
  value       = var.enable_failover_drill ? aws_fis_experiment_template.failover[0].id : null
}
