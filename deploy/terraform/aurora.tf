# Aurora PostgreSQL: a writer and at least one reader in another AZ, encrypted, TLS-only, master password
# managed by RDS in Secrets Manager, backups, deletion protection.

locals {
  db_subnet_ids   = length(var.database_subnet_ids) > 0 ? var.database_subnet_ids : var.private_subnet_ids
  db_engine_major = split(".", var.db_engine_version)[0]
  # "16.4" pins a minor version, "16" follows AWS's minor versions: auto minor upgrades only for the latter
  # (on a pinned minor they would move the cluster on, and every later plan would propose a downgrade that
  # AWS refuses).
  db_engine_minor_pinned = length(split(".", var.db_engine_version)) > 1
  # The final snapshot's name: unique per incarnation of the stack and stable across plans. The data key is
  # created with the cluster, so a stack destroyed and created again under the same name gets a new key id,
  # hence a new snapshot name (no collision with the first stack's snapshot); within one stack the id never
  # changes, so the name is known before the cluster is ever destroyed, whatever db_skip_final_snapshot was
  # when the cluster was created. (plantimestamp() changed on every plan and needed ignore_changes, which
  # left a null or stale name in the state when db_skip_final_snapshot was switched later.)
  db_final_snapshot = "${var.name}-final-${substr(aws_kms_key.data.key_id, 0, 8)}"
  db_instance_type  = var.db_serverless ? "db.serverless" : var.db_instance_class
}

resource "aws_db_subnet_group" "this" {
  name        = var.name
  description = "${var.name}: Aurora PostgreSQL subnets"
  subnet_ids  = local.db_subnet_ids
}

# --- security group: PostgreSQL only from the service (and from RDS Proxy when enabled) ----------------

resource "aws_security_group" "db" {
  name_prefix = "${var.name}-db-" # a prefix: create_before_destroy needs a free name
  description = "${var.name}: Aurora PostgreSQL, port 5432 from the sqs2pg service and RDS Proxy only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-db" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_service" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the sqs2pg tasks (the service and its one-off migrate task)"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.proxy[0].id
}

# --- parameters: TLS required, slow statements and DDL logged, never their parameters -------------------

resource "aws_rds_cluster_parameter_group" "this" {
  name        = "${var.name}-aurora-postgresql${local.db_engine_major}"
  family      = "aurora-postgresql${local.db_engine_major}"
  description = "${var.name}: TLS required, statement logging"

  # In force from the first boot of a cluster this module creates; a cluster that adopts this group later
  # takes it at its next reboot (README, "TLS").
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  # A slow statement is logged without its bind parameters, which are the messages' bodies: nothing a
  # producer sent reaches CloudWatch Logs, neither from a slow INSERT nor from a failed one.
  parameter {
    name  = "log_parameter_max_length"
    value = "0"
  }

  parameter {
    name  = "log_parameter_max_length_on_error"
    value = "0"
  }

  # A major upgrade brings a new family, so a new group (its name carries the major version): created before
  # the old one, which the cluster still uses until the upgrade, is deleted.
  lifecycle {
    create_before_destroy = true
  }
}

# --- the cluster -----------------------------------------------------------------------------------------

resource "aws_rds_cluster" "this" {
  #checkov:skip=CKV_AWS_162:IAM database authentication is a variable (db_iam_authentication, off): sqs2pg logs in with the application user's password from Secrets Manager (through RDS Proxy by default), and an authentication method nothing uses is one more way in (README, "Who may log in").
  #checkov:skip=CKV2_AWS_8:Backups are Aurora's own continuous automated backups with point-in-time recovery (db_backup_retention_days, final snapshot on destroy); AWS Backup plans, where used, are organisation-wide and attached by tag outside this module.
  cluster_identifier = var.name
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned"
  # "16" (the default): AWS picks the newest minor version of major 16 and auto minor upgrades move it on;
  # the provider compares it with engine_version_actual by prefix, so a minor upgrade never shows as drift.
  # A pinned "16.4" turns auto minor upgrades off on the instances (local.db_engine_minor_pinned): else AWS
  # would move it to 16.6 and every later plan would propose a downgrade that fails.
  engine_version = var.db_engine_version
  # A major upgrade (16 -> 17) is a deliberate change: set db_engine_version = "17" and
  # db_allow_major_version_upgrade = true (and the parameter group family follows the major version), apply
  # in a maintenance window; see README.md "Upgrading PostgreSQL".
  allow_major_version_upgrade = var.db_allow_major_version_upgrade
  apply_immediately           = var.db_apply_immediately
  database_name               = var.db_name
  port                        = local.db_port

  master_username               = var.db_master_username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.data.arn

  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.db.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.this.name

  storage_encrypted = true
  kms_key_id        = aws_kms_key.data.arn

  backup_retention_period = var.db_backup_retention_days
  preferred_backup_window = var.db_preferred_backup_window
  copy_tags_to_snapshot   = true
  deletion_protection     = var.db_deletion_protection
  skip_final_snapshot     = var.db_skip_final_snapshot
  # Always named, also with skip_final_snapshot = true (the provider reads it only at destroy): switching
  # db_skip_final_snapshot later then needs no other change.
  final_snapshot_identifier = local.db_final_snapshot

  # sqs2pg logs in with a password from Secrets Manager; IAM database authentication only where asked for.
  iam_database_authentication_enabled = var.db_iam_authentication
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  # RDS Data API: lets an operator run SQL (create the application user, README) with IAM and the master
  # secret, without network access to the private cluster.
  enable_http_endpoint = var.db_enable_data_api

  dynamic "serverlessv2_scaling_configuration" {
    for_each = var.db_serverless ? [1] : []
    content {
      min_capacity = var.db_serverless_min_capacity
      max_capacity = var.db_serverless_max_capacity
    }
  }

  lifecycle {
    precondition {
      condition     = !var.db_serverless || var.db_serverless_max_capacity > var.db_serverless_min_capacity
      error_message = "db_serverless_max_capacity must be above db_serverless_min_capacity."
    }
  }

  depends_on = [aws_cloudwatch_log_group.aurora]
}

# Created here (encrypted, with retention) so RDS exports into it instead of creating one that never expires.
resource "aws_cloudwatch_log_group" "aurora" {
  name              = "/aws/rds/cluster/${var.name}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

# The writer is created first (Aurora makes the first instance of a cluster its writer); the readers, which
# are also its failover targets, follow and are placed round-robin over the remaining AZs of
# db_availability_zones, so the writer and the first reader are never in the same AZ.
locals {
  db_monitoring_role_arn = var.db_monitoring_interval > 0 ? aws_iam_role.rds_monitoring.arn : null
}

resource "aws_rds_cluster_instance" "writer" {
  #checkov:skip=CKV_AWS_226:Auto minor upgrades are on unless db_engine_version pins a minor version (16.4): AWS would then upgrade past the pin and every later plan would propose a downgrade that fails. A pinned minor is upgraded by changing db_engine_version (README.md).
  identifier         = "${var.name}-1"
  cluster_identifier = aws_rds_cluster.this.id
  engine             = aws_rds_cluster.this.engine
  engine_version     = aws_rds_cluster.this.engine_version
  instance_class     = local.db_instance_type
  availability_zone  = var.db_availability_zones[0]

  db_subnet_group_name       = aws_db_subnet_group.this.name
  publicly_accessible        = false
  auto_minor_version_upgrade = !local.db_engine_minor_pinned
  # Instance changes (class, parameters, an engine upgrade) follow the cluster's setting.
  apply_immediately = var.db_apply_immediately
  promotion_tier    = 0

  monitoring_interval = var.db_monitoring_interval
  monitoring_role_arn = local.db_monitoring_role_arn

  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.data.arn

  # Enhanced Monitoring refuses a role whose policy is not attached yet.
  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}

resource "aws_rds_cluster_instance" "reader" {
  #checkov:skip=CKV_AWS_226:Auto minor upgrades are on unless db_engine_version pins a minor version (16.4): AWS would then upgrade past the pin and every later plan would propose a downgrade that fails. A pinned minor is upgraded by changing db_engine_version (README.md).
  count = var.db_instance_count - 1

  identifier         = "${var.name}-${count.index + 2}"
  cluster_identifier = aws_rds_cluster.this.id
  engine             = aws_rds_cluster.this.engine
  engine_version     = aws_rds_cluster.this.engine_version
  instance_class     = local.db_instance_type
  # AZs 1, 2, ..., n-1, 0, 1, ...: never the writer's AZ for the first reader.
  availability_zone = element(var.db_availability_zones, count.index + 1)

  db_subnet_group_name       = aws_db_subnet_group.this.name
  publicly_accessible        = false
  auto_minor_version_upgrade = !local.db_engine_minor_pinned
  # Instance changes (class, parameters, an engine upgrade) follow the cluster's setting.
  apply_immediately = var.db_apply_immediately
  promotion_tier    = 1

  monitoring_interval = var.db_monitoring_interval
  monitoring_role_arn = local.db_monitoring_role_arn

  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.data.arn

  depends_on = [aws_rds_cluster_instance.writer, aws_iam_role_policy_attachment.rds_monitoring]
}

# --- the application's database credentials ----------------------------------------------------------------
#
# sqs2pg reads one variable, DATABASE_URL. It is injected into the task from this secret's DATABASE_URL key
# (ECS `secrets`, valueFrom "<arn>:DATABASE_URL::"), so it never appears in the task definition or in the
# Terraform state. The operator sets the value out of band (see README.md), as JSON:
#   {"username": "sqs2pg_app", "password": "...",
#    "DATABASE_URL": "postgresql://sqs2pg_app:...@<database_host>:5432/sqs2pg?<database_url_tls>"}
# (outputs: through RDS Proxy, sslmode=verify-full&sslrootcert=system: its ACM certificate chains to the
# system's CAs; README "TLS" says how to verify Aurora itself).
# username/password are the keys RDS Proxy reads, so the same secret also authenticates the proxy to the
# database for that user. The master user's secret stays managed (and rotated) by RDS; the service never
# uses it.
resource "aws_secretsmanager_secret" "app_database" {
  #checkov:skip=CKV2_AWS_57:The value is the application user's password plus a DATABASE_URL built from it; it is set and rotated by the operator (README), as no rotation Lambda can rewrite the URL key. The master password is rotated by RDS.
  name        = "${var.name}/app-database"
  description = "${var.name}: the application database user (username, password) and the DATABASE_URL sqs2pg reads"
  kms_key_id  = aws_kms_key.data.arn
  # 7 to 30 days in production; 0 deletes at once, so a test stack can be destroyed and created again under
  # the same name (a secret waiting out its recovery window keeps its name).
  recovery_window_in_days = var.secret_recovery_window_days
}
