# Optional RDS Proxy in front of the cluster. Recommended: the service keeps one address through a
# failover, and the proxy queues new connections while the new writer comes up. TLS is required.

locals {
  master_secret_arn = aws_rds_cluster.this.master_user_secret[0].secret_arn

  # The host the application's DATABASE_URL should name.
  database_host = var.enable_rds_proxy ? aws_db_proxy.this[0].endpoint : aws_rds_cluster.this.endpoint
}

resource "aws_security_group" "proxy" {
  #checkov:skip=CKV2_AWS_5:It is attached to aws_db_proxy.this[0] (vpc_security_group_ids); checkov's graph does not follow count-indexed references. Both exist only when enable_rds_proxy is true.
  count = var.enable_rds_proxy ? 1 : 0

  name_prefix = "${var.name}-rds-proxy-"
  description = "${var.name}: RDS Proxy, port 5432 from the sqs2pg service only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-rds-proxy" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_service" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL from the sqs2pg tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_egress_rule" "proxy_to_db" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL to the Aurora instances"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.db.id
}

# --- the proxy's role: read the two secrets it authenticates with, nothing else -----------------------------

data "aws_iam_policy_document" "proxy_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "proxy" {
  statement {
    sid     = "ReadDatabaseSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = concat(
      [aws_secretsmanager_secret.app_database.arn],
      var.rds_proxy_allow_master_user ? [local.master_secret_arn] : [],
    )
  }

  statement {
    sid       = "DecryptDatabaseSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  name               = "${var.name}-rds-proxy"
  assume_role_policy = data.aws_iam_policy_document.proxy_assume.json
}

resource "aws_iam_role_policy" "proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  name   = "read-database-secrets"
  role   = aws_iam_role.proxy[0].id
  policy = data.aws_iam_policy_document.proxy.json
}

# --- the proxy ----------------------------------------------------------------------------------------------

resource "aws_db_proxy" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  name                   = var.name
  engine_family          = "POSTGRESQL"
  require_tls            = true
  debug_logging          = false
  idle_client_timeout    = var.rds_proxy_idle_client_timeout
  role_arn               = aws_iam_role.proxy[0].arn
  vpc_security_group_ids = [aws_security_group.proxy[0].id]
  vpc_subnet_ids         = local.db_subnet_ids

  # One auth entry per database user that may log in through the proxy.
  auth {
    description               = "application user (sqs2pg)"
    auth_scheme               = "SECRETS"
    iam_auth                  = "DISABLED"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    secret_arn                = aws_secretsmanager_secret.app_database.arn
  }

  # The master user logs in through the proxy only where asked for (administration goes through the Data
  # API, README step 4); sqs2pg never uses it.
  dynamic "auth" {
    for_each = var.rds_proxy_allow_master_user ? [1] : []
    content {
      description               = "master user (administration)"
      auth_scheme               = "SECRETS"
      iam_auth                  = "DISABLED"
      client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
      secret_arn                = local.master_secret_arn
    }
  }

  depends_on = [aws_iam_role_policy.proxy]
}

resource "aws_db_proxy_default_target_group" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    # How long the proxy holds a connection request while no database connection is free (e.g. during a
    # failover). sqs2pg gives up sooner (SQS2PG_DB_CONNECT_TIMEOUT_S, 5 s) and its circuit breaker pauses.
    connection_borrow_timeout    = 120
    max_connections_percent      = 90
    max_idle_connections_percent = 50
  }
}

resource "aws_db_proxy_target" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  db_proxy_name         = aws_db_proxy.this[0].name
  target_group_name     = aws_db_proxy_default_target_group.this[0].name
  db_cluster_identifier = aws_rds_cluster.this.cluster_identifier
}
