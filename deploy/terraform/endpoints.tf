# Optional VPC endpoints (create_vpc_endpoints): the tasks reach the AWS APIs they use without a NAT
# gateway, and their HTTPS egress is narrowed from 0.0.0.0/0 to these endpoints and S3's prefix list.
# Off by default: most VPCs already route to the APIs (a NAT gateway, or endpoints of their own, which
# this module must not duplicate: two endpoints with private DNS for one service in one VPC are refused).

locals {
  # What the tasks call: SQS (the queues), Secrets Manager (DATABASE_URL, fetched at task start), ECR
  # (the image; its layers come from S3, through the gateway endpoint below), CloudWatch Logs (awslogs),
  # and, with the ADOT sidecar, APS (remote write) and X-Ray (traces, with adot_traces).
  vpc_endpoint_services = var.create_vpc_endpoints ? toset(concat(
    ["sqs", "secretsmanager", "ecr.api", "ecr.dkr", "logs"],
    var.enable_adot_sidecar ? ["aps-workspaces"] : [],
    local.traces_enabled ? ["xray"] : [],
  )) : toset([])
}

resource "aws_security_group" "endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  name_prefix = "${var.name}-endpoints-"
  description = "${var.name}: VPC interface endpoints, HTTPS from the sqs2pg tasks only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-endpoints" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_service" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the sqs2pg tasks"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.vpc_endpoint_services

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = { Name = "${var.name}-${each.key}" }
}

resource "aws_vpc_endpoint" "s3" {
  count = var.create_vpc_endpoints ? 1 : 0

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.vpc_endpoint_route_table_ids
  tags              = { Name = "${var.name}-s3" }

  lifecycle {
    precondition {
      condition     = length(var.vpc_endpoint_route_table_ids) > 0
      error_message = "create_vpc_endpoints needs vpc_endpoint_route_table_ids: the route tables of private_subnet_ids, for the S3 gateway endpoint that ECR's image layers come through."
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "service_to_endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id            = aws_security_group.service.id
  description                  = "HTTPS to the VPC interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints[0].id
}

resource "aws_vpc_security_group_egress_rule" "service_to_s3" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id = aws_security_group.service.id
  description       = "HTTPS to S3 (ECR image layers) through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id
}
