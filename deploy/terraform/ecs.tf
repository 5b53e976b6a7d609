# ECS Fargate: the cluster, the task definition (sqs2pg plus an optional ADOT collector sidecar) and the
# service in the private subnets.

locals {
  container_name = "sqs2pg"
  image          = coalesce(var.container_image, "${aws_ecr_repository.this.repository_url}:${var.image_tag}")
  log_group_name = "/ecs/${var.name}"

  # Plain settings only. DATABASE_URL (it holds a password) arrives through `secrets` below.
  app_environment = merge(
    # RDS Proxy hands out a database connection per transaction: sqs2pg then keeps nothing on a connection, so
    # the proxy multiplexes instead of pinning (alarm <name>-proxy-pinned-connections says if it does not).
    # service_environment may say otherwise.
    { SQS2PG_DB_POOLER = var.enable_rds_proxy ? "transaction" : "none" },
    # With the sidecar's traces (prometheus.tf): the standard OTEL_* settings point sqs2pg at it.
    { for k, v in {
      OTEL_EXPORTER_OTLP_ENDPOINT = "http://${local.otlp_endpoint}"
      OTEL_SERVICE_NAME           = var.name
      OTEL_TRACES_SAMPLER         = "parentbased_traceidratio"
      OTEL_TRACES_SAMPLER_ARG     = tostring(var.trace_sample_ratio)
    } : k => v if local.traces_enabled },
    var.service_environment,
    {
      SQS_QUEUE_URLS          = aws_sqs_queue.main.url
      AWS_REGION              = local.region
      HTTP_PORT               = tostring(local.metrics_port)
      HANDLER                 = var.handler
      SQS2PG_SHUTDOWN_GRACE_S = tostring(var.shutdown_grace_seconds)
      SQS2PG_RECEIVE_WAIT_S   = tostring(var.receive_wait_seconds)
    },
  )

  app_container = {
    name      = local.container_name
    image     = local.image
    essential = true
    command   = ["run"]
    # The image's own non-root user and group (Dockerfile: USER 10001:10001); nothing is written at run time.
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    # No Linux capability: sqs2pg binds an unprivileged port and changes no file, user or clock.
    linuxParameters = { capabilities = { add = [], drop = ["ALL"] } }
    # SIGTERM, then SIGKILL after this long. A clean stop cuts the long poll short at once and gives in-flight
    # work SQS2PG_SHUTDOWN_GRACE_S: it takes at most that plus a few seconds (README, "clean shutdown").
    stopTimeout = var.stop_timeout_seconds

    portMappings = [
      { containerPort = local.metrics_port, protocol = "tcp", name = "http" },
    ]

    environment = [for k in sort(keys(local.app_environment)) : { name = k, value = local.app_environment[k] }]

    secrets = [
      { name = "DATABASE_URL", valueFrom = "${aws_secretsmanager_secret.app_database.arn}:DATABASE_URL::" },
    ]

    # Liveness. The image has no curl; it has python on PATH.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.metrics_port}/healthz', timeout=4)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service.name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.container_name
      }
    }
  }

  adot_container = {
    name  = "adot-collector"
    image = var.adot_image
    # Not essential: losing metrics must not stop the consumer.
    essential              = false
    readonlyRootFilesystem = true
    privileged             = false
    linuxParameters        = { capabilities = { add = [], drop = ["ALL"] } }
    environment = [
      { name = "AOT_CONFIG_CONTENT", value = local.adot_config },
    ]
    mountPoints = [
      { sourceVolume = "adot-tmp", containerPath = "/tmp", readOnly = false },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "adot"
      }
    }
  }

  # Two string branches: the containers are objects of different shapes, so no list of both is built.
  container_definitions = (var.enable_adot_sidecar
    ? jsonencode([local.app_container, local.adot_container])
    : jsonencode([local.app_container])
  )
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "service" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
}

# --- security group of the tasks ---------------------------------------------------------------------------

resource "aws_security_group" "service" {
  name_prefix = "${var.name}-service-"
  description = "${var.name}: sqs2pg tasks; metrics port only from the Prometheus scraper"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-service" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "service_metrics_from_scraper" {
  count = var.metrics_scraper_security_group_id == "" ? 0 : 1

  security_group_id            = aws_security_group.service.id
  description                  = "Prometheus scrape of /metrics"
  ip_protocol                  = "tcp"
  from_port                    = local.metrics_port
  to_port                      = local.metrics_port
  referenced_security_group_id = var.metrics_scraper_security_group_id
}

# HTTPS to the AWS APIs: anywhere (through the VPC's NAT gateway or its own endpoints), or, with
# create_vpc_endpoints, only to this module's endpoints (endpoints.tf) and S3's prefix list (image layers).
resource "aws_vpc_security_group_egress_rule" "service_https" {
  count = var.create_vpc_endpoints ? 0 : 1

  security_group_id = aws_security_group.service.id
  description       = "HTTPS to AWS APIs: SQS, ECR, CloudWatch Logs, Secrets Manager, APS (NAT or VPC endpoints)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "service_to_db" {
  security_group_id            = aws_security_group.service.id
  description                  = "PostgreSQL to the Aurora cluster"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.db.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.service.id
  description                  = "PostgreSQL to RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = local.db_port
  to_port                      = local.db_port
  referenced_security_group_id = aws_security_group.proxy[0].id
}

# --- task definition -----------------------------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Scratch space for the collector on an otherwise read-only root filesystem.
  dynamic "volume" {
    for_each = var.enable_adot_sidecar ? ["adot-tmp"] : []
    content {
      name = volume.value
    }
  }

  container_definitions = local.container_definitions

  lifecycle {
    precondition {
      condition     = var.stop_timeout_seconds >= var.shutdown_grace_seconds + 5
      error_message = "stop_timeout_seconds must be at least shutdown_grace_seconds + 5, or ECS kills the task (SIGKILL) before in-flight work has finished and what it holds is handed back."
    }
    precondition {
      condition     = !var.enable_adot_sidecar || local.amp_enabled
      error_message = "enable_adot_sidecar needs an AMP workspace: set create_amp_workspace = true or amp_workspace_id."
    }
  }
}

# --- service ---------------------------------------------------------------------------------------------------

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = var.min_tasks
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # A rolling deployment starts new tasks before stopping old ones; stopped tasks drain cleanly on SIGTERM.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = false
  }

  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  enable_execute_command  = false

  # Said explicitly: provider 5.100.0 sends DISABLED when this is left out, while AWS's default for new
  # services is ENABLED. ENABLED lets ECS move tasks back into an AZ after an AZ event; sqs2pg's tasks are
  # interchangeable consumers (a moved task's messages are handed back and picked up by the others), so
  # rebalancing costs nothing but a clean SIGTERM.
  availability_zone_rebalancing = "ENABLED"

  lifecycle {
    # Application Auto Scaling owns the task count after creation.
    ignore_changes = [desired_count]
  }

  # The first deployment must not start tasks before their roles can do anything: ECS does not wait for
  # IAM policies attached in the same apply.
  depends_on = [aws_iam_role_policy.task, aws_iam_role_policy.execution]
}
