# ---------------------------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region to deploy into, e.g. eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "name" {
  description = "Name prefix for every resource (ECS cluster/service, Aurora cluster, ECR repository, log group, ...)."
  type        = string
  default     = "sqs2pg"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource (through the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------------
# Network (an existing VPC)
# ---------------------------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "ID of the existing VPC to deploy into."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two, in different AZs) for the ECS tasks. They need a route to the AWS APIs (NAT gateway or VPC endpoints for SQS, ECR, CloudWatch Logs, Secrets Manager and, with ADOT, APS)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids needs at least two subnet ids (subnet-...)."
  }
}

variable "create_vpc_endpoints" {
  description = "Create VPC endpoints for what the tasks call (SQS, Secrets Manager, ECR api and dkr, CloudWatch Logs, APS with the ADOT sidecar; S3 as a gateway on vpc_endpoint_route_table_ids) and narrow the tasks' HTTPS egress to them. Off: the VPC already reaches the APIs (a NAT gateway or endpoints of its own). private_subnet_ids must then be one subnet per AZ."
  type        = bool
  default     = false
}

variable "vpc_endpoint_route_table_ids" {
  description = "With create_vpc_endpoints: the route tables of private_subnet_ids, for the S3 gateway endpoint (ECR image layers)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.vpc_endpoint_route_table_ids : can(regex("^rtb-[0-9a-f]+$", r))])
    error_message = "vpc_endpoint_route_table_ids must hold route table ids (rtb-...)."
  }
}

variable "database_subnet_ids" {
  description = "Subnets for the Aurora subnet group and RDS Proxy (at least two AZs). Empty: reuse private_subnet_ids."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.database_subnet_ids) == 0 || (length(var.database_subnet_ids) >= 2 && alltrue([for s in var.database_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))]))
    error_message = "database_subnet_ids must be empty or hold at least two subnet ids (subnet-...)."
  }
}

# ---------------------------------------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------------------------------------

variable "queue_name" {
  description = "Base name of the FIFO queue, without .fifo: the queue is <queue_name>.fifo, its dead-letter queue <queue_name>-dlq.fifo."
  type        = string
  default     = "orders"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,71}$", var.queue_name))
    error_message = "queue_name: letters, digits, hyphens and underscores only, at most 71 characters, and without the .fifo suffix."
  }
}

variable "max_receive_count" {
  description = "Receives after which SQS itself moves a message to the DLQ (redrive policy maxReceiveCount). Keep it high enough that a database outage (the service's circuit breaker holds messages without new receives) cannot use it up."
  type        = number
  default     = 25

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be an integer from 1 to 1000."
  }
}

variable "queue_message_retention_seconds" {
  description = "Retention of the source queue (60 s to 14 days). Default 4 days. Keep SQS2PG_IDEMPOTENCY_RETENTION_DAYS longer than this plus the time a message may sit in the DLQ."
  type        = number
  default     = 345600

  validation {
    condition     = var.queue_message_retention_seconds >= 60 && var.queue_message_retention_seconds <= 1209600
    error_message = "queue_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queue (60 s to 14 days). Default 14 days: a FIFO DLQ keeps the original enqueue time, so it must be longer than the source queue's."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "queue_max_message_size" {
  description = "MaximumMessageSize of the queue and its DLQ, in bytes. SQS takes up to 1 MiB (1,048,576), and sqs2pg commits bodies that large, but the AWS provider 5.x this module pins refuses more than 262,144 at plan: raising it needs provider 6 or `aws sqs set-queue-attributes` (README.md)."
  type        = number
  default     = 262144

  validation {
    condition     = var.queue_max_message_size >= 1024 && var.queue_max_message_size <= 262144
    error_message = "queue_max_message_size must be from 1,024 to 262,144 bytes with the AWS provider 5.x (README.md: 1 MiB queues)."
  }
}

variable "queue_visibility_timeout_seconds" {
  description = "Queue default visibility timeout. sqs2pg asks for SQS2PG_VISIBILITY_TIMEOUT_S (30) on every receive and its heartbeat extends it, so this only matters for other consumers (e.g. `sqs2pg dlq` tooling)."
  type        = number
  default     = 30

  validation {
    condition     = var.queue_visibility_timeout_seconds >= 5 && var.queue_visibility_timeout_seconds <= 43200
    error_message = "queue_visibility_timeout_seconds must be between 5 and 43200."
  }
}

variable "content_based_deduplication" {
  description = "Enable content-based deduplication on the source queue. Off by default: producers send a MessageDeduplicationId (or idempotency_key attribute)."
  type        = bool
  default     = false
}

variable "sqs_high_throughput" {
  description = "FIFO high-throughput mode: deduplication_scope = messageGroup and fifo_throughput_limit = perMessageGroupId."
  type        = bool
  default     = false
}

variable "sqs_kms_key_arn" {
  description = "ARN of a customer-managed KMS key for SSE-KMS on both queues. null (default): SQS-managed SSE (SSE-SQS). Producers then need kms:GenerateDataKey on this key."
  type        = string
  default     = null

  validation {
    condition     = var.sqs_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.sqs_kms_key_arn))
    error_message = "sqs_kms_key_arn must be a KMS key ARN (arn:aws:kms:...) or null."
  }
}

variable "sqs_kms_data_key_reuse_period_seconds" {
  description = "With SSE-KMS: how long SQS reuses a data key before calling KMS again (60-86400)."
  type        = number
  default     = 300

  validation {
    condition     = var.sqs_kms_data_key_reuse_period_seconds >= 60 && var.sqs_kms_data_key_reuse_period_seconds <= 86400
    error_message = "sqs_kms_data_key_reuse_period_seconds must be between 60 and 86400."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Aurora PostgreSQL
# ---------------------------------------------------------------------------------------------------------

variable "db_engine_version" {
  description = "Aurora PostgreSQL major version, e.g. 16: AWS picks its newest minor version and auto minor upgrades move it on without drift. A minor version (16.4) pins it and turns auto minor upgrades off (an upgrade would make every later plan propose a downgrade that fails): minor upgrades are then yours to apply. The major version picks the parameter group family."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^1[3-9](\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must be a major version such as 16 (13 or newer), or major.minor such as 16.4."
  }
}

variable "db_allow_major_version_upgrade" {
  description = "Allow a change of db_engine_version's major version (16 -> 17) to be applied. false (default): such a plan fails at apply instead of upgrading by surprise."
  type        = bool
  default     = false
}

variable "db_apply_immediately" {
  description = "Apply changes to the cluster and its instances (an engine upgrade among them) at once instead of in the next maintenance window. Either way an engine upgrade is an outage of the cluster."
  type        = bool
  default     = false
}

variable "db_name" {
  description = "Name of the database created in the cluster."
  type        = string
  default     = "sqs2pg"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and hold only lower-case letters, digits and underscores."
  }
}

variable "db_master_username" {
  description = "Master user name. Its password is generated and kept by RDS in Secrets Manager (manage_master_user_password)."
  type        = string
  default     = "sqs2pg_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_master_username)) && !contains(["postgres", "rdsadmin", "admin"], var.db_master_username)
    error_message = "db_master_username must be a lower-case identifier and not a reserved name (postgres, rdsadmin, admin)."
  }
}

variable "db_instance_count" {
  description = "Aurora instances: one writer plus readers (failover targets). At least 2, spread over db_availability_zones."
  type        = number
  default     = 2

  validation {
    condition     = var.db_instance_count >= 2 && var.db_instance_count <= 16 && floor(var.db_instance_count) == var.db_instance_count
    error_message = "db_instance_count must be an integer from 2 (a writer and a reader in another AZ) to 16."
  }
}

variable "db_availability_zones" {
  description = "AZs for the Aurora instances, assigned round-robin (instance i goes to AZ i mod n): at least two distinct AZs, so the writer and its first reader never share one."
  type        = list(string)

  validation {
    condition     = length(var.db_availability_zones) >= 2 && length(distinct(var.db_availability_zones)) == length(var.db_availability_zones)
    error_message = "db_availability_zones needs at least two distinct availability zones."
  }
}

variable "db_serverless" {
  description = "Aurora Serverless v2: instances of class db.serverless scaling between db_serverless_min_capacity and db_serverless_max_capacity ACUs. false: provisioned instances of db_instance_class."
  type        = bool
  default     = false
}

variable "db_instance_class" {
  description = "Instance class when db_serverless is false."
  type        = string
  default     = "db.r6g.large"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must look like db.r6g.large."
  }
}

variable "db_serverless_min_capacity" {
  description = "Serverless v2 minimum ACUs (0.5 steps)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.db_serverless_min_capacity >= 0 && var.db_serverless_min_capacity <= 256 && floor(var.db_serverless_min_capacity * 2) == var.db_serverless_min_capacity * 2
    error_message = "db_serverless_min_capacity must be between 0 and 256 in steps of 0.5."
  }
}

variable "db_serverless_max_capacity" {
  description = "Serverless v2 maximum ACUs (0.5 steps, above the minimum)."
  type        = number
  default     = 16

  validation {
    condition     = var.db_serverless_max_capacity >= 1 && var.db_serverless_max_capacity <= 256 && floor(var.db_serverless_max_capacity * 2) == var.db_serverless_max_capacity * 2
    error_message = "db_serverless_max_capacity must be between 1 and 256 in steps of 0.5."
  }
}

variable "db_backup_retention_days" {
  description = "Days automated backups are kept (point-in-time recovery window)."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_preferred_backup_window" {
  description = "Daily backup window (UTC, hh24:mi-hh24:mi, at least 30 minutes)."
  type        = string
  default     = "03:00-04:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$", var.db_preferred_backup_window))
    error_message = "db_preferred_backup_window must look like 03:00-04:00."
  }
}

variable "db_deletion_protection" {
  description = "Deletion protection on the Aurora cluster. Keep true in production; set false only to destroy the stack."
  type        = bool
  default     = true
}

variable "secret_recovery_window_days" {
  description = "Days a deleted app-database secret can be recovered (7-30); 0 deletes it at once, for test stacks that are destroyed and created again under the same name."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or from 7 to 30."
  }
}

variable "db_skip_final_snapshot" {
  description = "Skip the final snapshot when the cluster is destroyed. false (default): a snapshot <name>-final-<first 8 hex digits of the stack's KMS key id> is taken (unique per incarnation of the stack)."
  type        = bool
  default     = false
}

variable "db_monitoring_interval" {
  description = "Enhanced Monitoring interval in seconds (0 disables it; 1, 5, 10, 15, 30 or 60)."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_enable_data_api" {
  description = "Enable the RDS Data API (HTTP endpoint) on the cluster, used to create the application user without network access to the database (README step 4). Callers still need IAM rds-data permissions and the master secret. On by default for that step; false once the user exists closes it (README, \"Decisions\")."
  type        = bool
  default     = true
}

variable "db_iam_authentication" {
  description = "Enable IAM database authentication on the cluster. sqs2pg logs in with the password in its DATABASE_URL secret and does not use it; enable it for other clients that do."
  type        = bool
  default     = false
}

variable "enable_rds_proxy" {
  description = "Put RDS Proxy in front of the cluster (recommended: it keeps one address and queues connections during a failover). DATABASE_URL should then point at the proxy endpoint."
  type        = bool
  default     = true
}

variable "rds_proxy_allow_master_user" {
  description = "Let the master user log in through RDS Proxy (the proxy then reads the master secret too). Off: only the application user goes through the proxy; administration goes through the Data API."
  type        = bool
  default     = false
}

variable "rds_proxy_idle_client_timeout" {
  description = "Seconds a client connection to the proxy may stay idle before the proxy closes it."
  type        = number
  default     = 1800

  validation {
    condition     = var.rds_proxy_idle_client_timeout >= 1 && var.rds_proxy_idle_client_timeout <= 28800
    error_message = "rds_proxy_idle_client_timeout must be between 1 and 28800."
  }
}

# ---------------------------------------------------------------------------------------------------------
# ECS service
# ---------------------------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the sqs2pg image in this stack's ECR repository (tags are immutable: use a version or commit id). Ignored when container_image is set."
  type        = string
  # The package version (pyproject.toml), which tests/deploy keeps in step: README step 3 pushes that tag.
  default = "0.4.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable Docker tag (not latest)."
  }
}

variable "container_image" {
  description = "Full image reference to run instead of <ecr repository>:<image_tag> (e.g. an image in another registry, pinned by digest). null: use the stack's ECR repository."
  type        = string
  default     = null
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks: X86_64 or ARM64 (build the image for the same one)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (256, 512, 1024, 2048, 4096)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB (must be valid for task_cpu)."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720
    error_message = "task_memory must be between 512 and 30720 MiB."
  }
}

variable "handler" {
  description = "HANDLER: import path of the message handler (package.module:function)."
  type        = string
  default     = "sqs2pg.handler:insert_event"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", var.handler))
    error_message = "handler must look like package.module:function."
  }
}

variable "shutdown_grace_seconds" {
  description = "SQS2PG_SHUTDOWN_GRACE_S: time in-flight work gets after SIGTERM."
  type        = number
  default     = 20

  validation {
    condition     = var.shutdown_grace_seconds >= 0 && var.shutdown_grace_seconds <= 110
    error_message = "shutdown_grace_seconds must be between 0 and 110."
  }
}

variable "receive_wait_seconds" {
  description = "SQS2PG_RECEIVE_WAIT_S: long-poll wait of one ReceiveMessage (0-20). A stop cuts a long poll short, so it does not lengthen a stop."
  type        = number
  default     = 20

  validation {
    condition     = var.receive_wait_seconds >= 0 && var.receive_wait_seconds <= 20
    error_message = "receive_wait_seconds must be between 0 and 20."
  }
}

variable "stop_timeout_seconds" {
  description = "ECS stopTimeout: seconds between SIGTERM and SIGKILL (Fargate maximum 120). Must be at least shutdown_grace_seconds + 5 (checked at plan time)."
  type        = number
  default     = 90

  validation {
    condition     = var.stop_timeout_seconds >= 2 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be between 2 and 120 (the Fargate maximum)."
  }
}

variable "service_environment" {
  description = "Extra SQS2PG_* settings for the service, e.g. { SQS2PG_MAX_CONCURRENT_GROUPS = \"32\" }. Not for secrets; SHUTDOWN_GRACE_S and RECEIVE_WAIT_S have their own variables."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k in keys(var.service_environment) :
      can(regex("^SQS2PG_[A-Z0-9_]+$", k)) && !contains(["SQS2PG_SHUTDOWN_GRACE_S", "SQS2PG_RECEIVE_WAIT_S"], k)
    ])
    error_message = "service_environment keys must be SQS2PG_* settings other than SQS2PG_SHUTDOWN_GRACE_S and SQS2PG_RECEIVE_WAIT_S (set those through their variables)."
  }
}

variable "log_retention_days" {
  description = "Retention of the service's CloudWatch log group (and the Aurora PostgreSQL log group)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ...)."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Autoscaling
# ---------------------------------------------------------------------------------------------------------

variable "min_tasks" {
  description = "Minimum running tasks (2 keeps one per AZ during a task or AZ failure)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_tasks >= 1 && floor(var.min_tasks) == var.min_tasks
    error_message = "min_tasks must be an integer of at least 1 (the backlog-per-task metric divides by the running task count)."
  }
}

variable "max_tasks" {
  description = "Maximum running tasks. 4 by default: one FIFO queue without sqs_high_throughput hands out about 2,700 messages a second (300 receives), which two default tasks drain (docs/performance.md, Planning for scale); raise it with sqs_high_throughput, or for a handler slower than the built-in one. Mind the database: each task opens up to SQS2PG_DB_POOL_SIZE (default MAX_CONCURRENT_GROUPS + 2 = 18) connections."
  type        = number
  default     = 4

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 200 && floor(var.max_tasks) == var.max_tasks
    error_message = "max_tasks must be an integer from 1 to 200."
  }
}

variable "backlog_per_task_target" {
  description = "Target tracking value: visible messages per running task (ApproximateNumberOfMessagesVisible / RunningTaskCount). Pick (acceptable queueing delay in s) x (messages/s one task sustains)."
  type        = number
  default     = 1000

  validation {
    condition     = var.backlog_per_task_target > 0
    error_message = "backlog_per_task_target must be positive."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "SNS topic that receives alarm and OK notifications. null: alarms without actions."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be an SNS topic ARN or null."
  }
}

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the source queue's ApproximateAgeOfOldestMessage stays above this many seconds for 5 minutes."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 60
    error_message = "alarm_oldest_message_age_seconds must be at least 60."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------------------

variable "metrics_scraper_security_group_id" {
  description = "Security group of the Prometheus scraper allowed to reach the metrics port (8080). Empty: no ingress rule at all."
  type        = string
  default     = ""

  validation {
    condition     = var.metrics_scraper_security_group_id == "" || can(regex("^sg-[0-9a-f]+$", var.metrics_scraper_security_group_id))
    error_message = "metrics_scraper_security_group_id must be empty or a security group id (sg-...)."
  }
}

variable "create_amp_workspace" {
  description = "Create an Amazon Managed Service for Prometheus workspace for sqs2pg's metrics."
  type        = bool
  default     = false
}

variable "amp_workspace_id" {
  description = "Existing AMP workspace id (ws-...) to remote-write to instead of creating one. null: none."
  type        = string
  default     = null

  validation {
    condition     = var.amp_workspace_id == null || can(regex("^ws-[0-9a-zA-Z-]+$", var.amp_workspace_id))
    error_message = "amp_workspace_id must be a workspace id (ws-...) or null."
  }
}

variable "enable_adot_sidecar" {
  description = "Run an ADOT collector sidecar that scrapes localhost:8080/metrics and remote-writes (SigV4) to the AMP workspace, and (adot_traces) exports sqs2pg's traces to AWS X-Ray. Needs create_amp_workspace or amp_workspace_id."
  type        = bool
  default     = false
}

variable "adot_image" {
  description = "ADOT collector image (pin a version)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"

  validation {
    condition     = !endswith(var.adot_image, ":latest") && can(regex(":[^/]+$|@sha256:", var.adot_image))
    error_message = "adot_image must be pinned to a tag other than latest or to a digest."
  }
}

variable "adot_traces" {
  description = "With the ADOT sidecar: sqs2pg sends its traces over OTLP/HTTP to the sidecar (127.0.0.1:4318), which exports them to AWS X-Ray; the task role may then put trace segments. Off: the sidecar handles metrics only."
  type        = bool
  default     = true
}

variable "trace_sample_ratio" {
  description = "With adot_traces: the share of the traces sqs2pg starts itself that are kept (OTEL_TRACES_SAMPLER=parentbased_traceidratio). A write whose producer sent a sampled trace context is always traced; X-Ray bills per trace recorded."
  type        = number
  default     = 0.05

  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio must be between 0 and 1."
  }
}

variable "adot_scrape_interval_seconds" {
  description = "How often the ADOT sidecar scrapes /metrics."
  type        = number
  default     = 15

  validation {
    condition     = var.adot_scrape_interval_seconds >= 5 && var.adot_scrape_interval_seconds <= 300
    error_message = "adot_scrape_interval_seconds must be between 5 and 300."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Failover drill
# ---------------------------------------------------------------------------------------------------------

variable "enable_failover_drill" {
  description = "Create an AWS FIS experiment template that fails the Aurora cluster over, for `sqs2pg drill` (README.md). Costs nothing until an experiment is started."
  type        = bool
  default     = false
}
