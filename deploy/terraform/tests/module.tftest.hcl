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
    condition     = startswith(aws_rds_cluster.this.final_snapshot_identifier, "sqs2pg-final-")
    error_message = "the final snapshot's name is unique (it carries the creation time)"
  }
  assert {
    condition     = length(aws_fis_experiment_template.failover) == 0
    error_message = "the failover drill is off by default"
  }
}

run "a_test_stack_can_be_destroyed_and_created_again" {
  command = plan

  variables {
    secret_recovery_window_days = 0
    db_deletion_protection      = false
    db_skip_final_snapshot      = true
  }

  assert {
    condition     = aws_secretsmanager_secret.app_database.recovery_window_in_days == 0 && aws_rds_cluster.this.final_snapshot_identifier == null
    error_message = "recovery window 0 and no final snapshot"
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
}

run "a_pinned_minor_version_is_still_accepted" {
  command = plan

  variables {
    db_engine_version = "16.4"
  }

  assert {
    condition     = aws_rds_cluster_parameter_group.this.family == "aurora-postgresql16"
    error_message = "16.4 is major 16"
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
