# `terraform test` with a mock provider (scripts/check-terraform.sh): what the module builds and what it refuses,
# without any AWS endpoint. The plans against moto (same script) cover the tfvars matrix with the real provider.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  # A key id known at plan time (a real one is only known after apply), so the final snapshot's name can be
  # checked by plan runs.
  mock_resource "aws_kms_key" {
    defaults = {
      key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
    override_during = plan
  }
}

variables {
  aws_region            = "eu-west-1"
  vpc_id                = "vpc-0123456789abcdef0"
  private_subnet_ids    = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  db_availability_zones = ["eu-west-1a", "eu-west-1b"]
}

run "defaults_follow_minor_upgrades" {
  command = plan

  assert {
    condition     = aws_rds_cluster.this.engine_version == "16" && !aws_rds_cluster.this.allow_major_version_upgrade
    error_message = "the default engine version is a major version, and a major upgrade is not allowed by default"
  }
  assert {
    condition     = aws_rds_cluster_parameter_group.this.family == "aurora-postgresql16"
    error_message = "the parameter group family follows the major version"
  }
  assert {
    condition     = aws_sqs_queue.main.max_message_size == 262144 && aws_sqs_queue.dlq.max_message_size == 262144
    error_message = "both queues say their message size: the largest provider 5.x accepts"
  }
  assert {
    condition     = aws_ecs_service.this.availability_zone_rebalancing == "ENABLED"
    error_message = "AZ rebalancing is said explicitly"
  }
  assert {
    condition     = aws_secretsmanager_secret.app_database.recovery_window_in_days == 7
    error_message = "a deleted secret is recoverable for 7 days by default"
  }
  assert {
    condition     = aws_rds_cluster.this.final_snapshot_identifier == "sqs2pg-final-1234abcd"
    error_message = "the final snapshot is named after the first 8 hex digits of the stack's KMS key id"
  }
  assert {
    condition     = aws_rds_cluster_instance.writer.auto_minor_version_upgrade && alltrue([for r in aws_rds_cluster_instance.reader : r.auto_minor_version_upgrade])
    error_message = "a major-only engine version keeps auto minor upgrades on, on every instance"
  }
  assert {
    condition     = !aws_rds_cluster.this.apply_immediately && !aws_rds_cluster_instance.writer.apply_immediately && alltrue([for r in aws_rds_cluster_instance.reader : !r.apply_immediately])
    error_message = "changes wait for the maintenance window by default, on the cluster and its instances"
  }
  assert {
    condition     = length(aws_fis_experiment_template.failover) == 0 && length(aws_iam_role.fis) == 0
    error_message = "the failover drill (template and role) is off by default"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.proxy_pinned_connections) == 1
    error_message = "behind RDS Proxy, pinning is alarmed on"
  }
  assert {
    condition     = length(aws_db_proxy.this[0].auth) == 1 && !aws_rds_cluster.this.iam_database_authentication_enabled
    error_message = "only the application user logs in through the proxy, and IAM database authentication is off, by default"
  }
  assert {
    condition     = length(aws_vpc_endpoint.interface) == 0 && length(aws_vpc_security_group_egress_rule.service_https) == 1
    error_message = "no VPC endpoints by default, and HTTPS egress to the APIs wherever they are"
  }
}

run "vpc_endpoints_narrow_the_tasks_egress_to_them" {
  command = plan

  variables {
    create_vpc_endpoints         = true
    vpc_endpoint_route_table_ids = ["rtb-0123456789abcdef0"]
    create_amp_workspace         = true
    enable_adot_sidecar          = true
  }

  assert {
    condition     = toset(keys(aws_vpc_endpoint.interface)) == toset(["sqs", "secretsmanager", "ecr.api", "ecr.dkr", "logs", "aps-workspaces", "xray"])
    error_message = "an interface endpoint for every API the tasks call"
  }
  assert {
    condition     = aws_vpc_endpoint.interface["sqs"].service_name == "com.amazonaws.eu-west-1.sqs" && aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway"
    error_message = "endpoints are named for the stack's region; S3 is a gateway"
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.service_https) == 0 && length(aws_vpc_security_group_egress_rule.service_to_endpoints) == 1
    error_message = "with the endpoints, the tasks' HTTPS goes only to them"
  }
}

run "refuses_vpc_endpoints_without_route_tables" {
  command = plan

  variables {
    create_vpc_endpoints = true
  }

  expect_failures = [aws_vpc_endpoint.s3]
}

run "a_test_stack_can_be_destroyed_and_created_again" {
  command = plan

  variables {
    secret_recovery_window_days = 0
    db_deletion_protection      = false
    db_skip_final_snapshot      = true
  }

  assert {
    condition     = aws_secretsmanager_secret.app_database.recovery_window_in_days == 0 && aws_rds_cluster.this.skip_final_snapshot
    error_message = "recovery window 0 and no final snapshot"
  }
  assert {
    condition     = aws_rds_cluster.this.final_snapshot_identifier == "sqs2pg-final-1234abcd"
    error_message = "the snapshot name stays set (and the same) with skip_final_snapshot, so switching it back needs nothing else"
  }
}

run "a_stack_created_again_gets_a_new_final_snapshot_name" {
  command = plan

  # The same stack name, a new incarnation: a new KMS key, so a new snapshot name that cannot collide with
  # the snapshot the first incarnation left behind.
  override_resource {
    target = aws_kms_key.data
    values = {
      key_id = "feedbeef-0000-4000-8000-000000000000"
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/feedbeef-0000-4000-8000-000000000000"
    }
    override_during = plan
  }

  assert {
    condition     = aws_rds_cluster.this.final_snapshot_identifier == "sqs2pg-final-feedbeef"
    error_message = "the snapshot name follows the stack's key"
  }
}

run "apply_immediately_reaches_the_instances" {
  command = plan

  variables {
    db_apply_immediately = true
    db_instance_count    = 3
  }

  assert {
    condition     = aws_rds_cluster.this.apply_immediately && aws_rds_cluster_instance.writer.apply_immediately && length(aws_rds_cluster_instance.reader) == 2 && alltrue([for r in aws_rds_cluster_instance.reader : r.apply_immediately])
    error_message = "db_apply_immediately applies to the cluster and to every instance"
  }
}

run "the_failover_drill_fails_this_cluster_over_and_stops_on_the_dlq_alarm" {
  command = plan

  variables {
    enable_failover_drill = true
  }

  assert {
    condition     = one(aws_fis_experiment_template.failover[0].action).action_id == "aws:rds:failover-db-cluster"
    error_message = "the experiment fails the cluster over"
  }
  assert {
    condition     = one(aws_fis_experiment_template.failover[0].target).resource_type == "aws:rds:cluster"
    error_message = "its target is the cluster"
  }
  assert {
    condition     = one(aws_fis_experiment_template.failover[0].stop_condition).source == "aws:cloudwatch:alarm"
    error_message = "it stops when the DLQ alarm fires"
  }
  assert {
    condition     = length(aws_iam_role.fis) == 1 && length(aws_iam_role_policy.fis) == 1
    error_message = "FIS gets its role and policy only with the drill"
  }
  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.fis_assume[0].statement : anytrue([
        for c in s.condition : c.variable == "aws:SourceAccount" && contains(c.values, "123456789012")
      ])
    ])
    error_message = "the FIS role may be assumed for this account only (aws:SourceAccount)"
  }
  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.fis[0].statement : s.actions == toset(["rds:DescribeDBClusters"]) && s.resources == toset(["*"])
    ])
    error_message = "FIS resolves its target with DescribeDBClusters on *"
  }
}

run "a_pinned_minor_version_turns_auto_minor_upgrades_off" {
  command = plan

  variables {
    db_engine_version = "16.4"
  }

  assert {
    condition     = aws_rds_cluster.this.engine_version == "16.4" && aws_rds_cluster_parameter_group.this.family == "aurora-postgresql16"
    error_message = "16.4 is kept as given, and is major 16"
  }
  assert {
    condition     = !aws_rds_cluster_instance.writer.auto_minor_version_upgrade && alltrue([for r in aws_rds_cluster_instance.reader : !r.auto_minor_version_upgrade])
    error_message = "a pinned minor version turns auto minor upgrades off on every instance (else every plan after an upgrade proposes a downgrade)"
  }
}

run "a_major_upgrade_is_explicit" {
  command = plan

  variables {
    db_engine_version              = "17"
    db_allow_major_version_upgrade = true
  }

  assert {
    condition     = aws_rds_cluster.this.allow_major_version_upgrade && aws_rds_cluster_parameter_group.this.family == "aurora-postgresql17" && aws_rds_cluster_parameter_group.this.name == "sqs2pg-aurora-postgresql17"
    error_message = "17 with the upgrade allowed: a new parameter group of family 17"
  }
}

run "refuses_an_engine_version_that_is_not_one" {
  command = plan
  variables {
    db_engine_version = "16.x"
  }
  expect_failures = [var.db_engine_version]
}

run "refuses_a_message_size_the_provider_would_refuse" {
  command = plan
  variables {
    queue_max_message_size = 1048576
  }
  expect_failures = [var.queue_max_message_size]
}

run "refuses_a_recovery_window_aws_refuses" {
  command = plan
  variables {
    secret_recovery_window_days = 3
  }
  expect_failures = [var.secret_recovery_window_days]
}

run "refuses_serverless_max_not_above_min" {
  command = plan
  variables {
    db_serverless              = true
    db_serverless_min_capacity = 2
    db_serverless_max_capacity = 2
  }
  expect_failures = [aws_rds_cluster.this]
}
