"""Properties of the Terraform root module in deploy/terraform, read statically with hcl2.

No AWS account, no terraform binary: these check what the issue asks of the module (FIFO queues with a
DLQ, encryption, Aurora spread over AZs with TLS and managed secrets, least-privilege roles, the stop
timeout against the service's shutdown) and that nothing refers to a variable, local, resource or data
source that does not exist, which is what `terraform validate` would catch first.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

from sqs2pg.version import __version__

from .tfparse import (
    TF_DIR,
    all_resources,
    clean,
    code_without_comments,
    data_sources,
    expr,
    locals_,
    outputs,
    parse_file,
    resources,
    terraform_blocks,
    tf_files,
    variables,
)

EXPECTED_FILES = {
    "versions.tf",
    "variables.tf",
    "sqs.tf",
    "aurora.tf",
    "proxy.tf",
    "ecs.tf",
    "iam.tf",
    "autoscaling.tf",
    "alarms.tf",
    "prometheus.tf",
    "ecr.tf",
    "kms.tf",
    "drill.tf",
    "endpoints.tf",
    "outputs.tf",
}


def default(name: str) -> object:
    return variables()[name].attr("default")


def validations(name: str) -> list[str]:
    return [expr(v.attr("condition")) for v in variables()[name].blocks("validation")]


# --- the files ---------------------------------------------------------------------------------------------


def test_the_module_has_its_files() -> None:
    names = {p.name for p in tf_files()}
    assert names >= EXPECTED_FILES, EXPECTED_FILES - names
    assert (TF_DIR / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parse_file(path), dict)


def test_tfvars_example_parses_and_sets_only_declared_variables() -> None:
    with open(TF_DIR / "terraform.tfvars.example") as f:
        example = hcl2.load(f)
    names = {k.strip('"') for k in example if not k.startswith("__")}
    undeclared = names - set(variables())
    assert not undeclared, f"terraform.tfvars.example sets undeclared variables: {undeclared}"
    required = {n for n, v in variables().items() if not v.has("default")}
    assert required <= names, f"terraform.tfvars.example leaves required variables out: {required - names}"


def test_aws_provider_is_pinned_to_5x() -> None:
    (tf,) = terraform_blocks()
    assert tf.attr("required_version").startswith(">=")
    aws = tf.blocks("required_providers")[0].attr("aws")
    aws = aws[0] if isinstance(aws, list) else aws
    assert aws["source"] == "hashicorp/aws"
    m = re.fullmatch(r"~> 5\.(\d+)", aws["version"])
    assert m, aws["version"]
    # 5.77 brought availability_zone_rebalancing on aws_ecs_service, which ecs.tf sets.
    assert int(m.group(1)) >= 77, aws["version"]


def test_nothing_refers_to_undeclared_variables_locals_resources_or_data_sources() -> None:
    declared_vars = set(variables())
    declared_locals = set(locals_())
    declared_resources = {f"{t}.{n}" for t, names in all_resources().items() for n in names}
    declared_data = {f"{t}.{n}" for t, names in data_sources().items() for n in names}  # type: ignore[union-attr]
    used_vars: set[str] = set()
    problems = []
    for path in tf_files():
        code = code_without_comments(path)
        for m in re.finditer(r"\bvar\.([A-Za-z0-9_]+)", code):
            used_vars.add(m.group(1))
            if m.group(1) not in declared_vars:
                problems.append(f"{path.name}: var.{m.group(1)}")
        for m in re.finditer(r"\blocal\.([A-Za-z0-9_]+)", code):
            if m.group(1) not in declared_locals:
                problems.append(f"{path.name}: local.{m.group(1)}")
        for m in re.finditer(r"\bdata\.(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)", code):
            if f"{m.group(1)}.{m.group(2)}" not in declared_data:
                problems.append(f"{path.name}: data.{m.group(1)}.{m.group(2)}")
        for m in re.finditer(r"(?<![\w.\"])(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)", code):
            if f"{m.group(1)}.{m.group(2)}" not in declared_resources:
                problems.append(f"{path.name}: {m.group(1)}.{m.group(2)}")
    assert not problems, "references to undeclared things:\n" + "\n".join(sorted(set(problems)))
    assert declared_vars - used_vars == set(), f"declared but never used: {declared_vars - used_vars}"


# --- variables -----------------------------------------------------------------------------------------------


def test_every_variable_has_a_description_and_a_type() -> None:
    for name, var in variables().items():
        assert len(var.attr("description", "")) >= 10, f"variable {name} needs a description"
        assert var.has("type"), f"variable {name} needs a type"


def test_every_validation_has_an_error_message() -> None:
    for name, var in variables().items():
        for v in var.blocks("validation"):
            assert v.attr("condition") and len(v.attr("error_message")) > 10, name


@pytest.mark.parametrize(
    "name",
    [
        "max_receive_count",
        "queue_message_retention_seconds",
        "dlq_message_retention_seconds",
        "db_instance_count",
        "db_availability_zones",
        "db_backup_retention_days",
        "stop_timeout_seconds",
        "shutdown_grace_seconds",
        "receive_wait_seconds",
        "private_subnet_ids",
        "vpc_id",
        "metrics_scraper_security_group_id",
        "service_environment",
        "image_tag",
        "adot_image",
    ],
)
def test_inputs_that_can_be_wrong_are_validated(name: str) -> None:
    assert validations(name), f"variable {name} has no validation"


# --- SQS ---------------------------------------------------------------------------------------------------------


def test_both_queues_are_fifo_and_encrypted() -> None:
    queues = resources("aws_sqs_queue")
    assert set(queues) == {"main", "dlq"}
    for name, q in queues.items():
        assert q.attr("fifo_queue") is True, name
        # SSE-SQS unless a KMS key is given; then SSE-KMS with that key (never neither).
        sse = expr(q.attr("sqs_managed_sse_enabled"))
        kms = expr(q.attr("kms_master_key_id"))
        assert re.search(r"local\.sqs_use_kms \? null : true", sse), sse
        assert re.search(r"local\.sqs_use_kms \? var\.sqs_kms_key_arn : null", kms), kms
    assert expr(locals_()["sqs_use_kms"]) == "${var.sqs_kms_key_arn != null}"
    assert default("sqs_kms_key_arn") is None
    assert (
        expr(queues["main"].attr("name")) == "${local.queue_name}"
        and expr(queues["dlq"].attr("name")) == "${local.dlq_name}"
    )
    assert expr(locals_()["queue_name"]).endswith(".fifo") and expr(locals_()["dlq_name"]).endswith("-dlq.fifo")


def test_source_queue_redrives_to_the_dlq_after_max_receive_count_default_25() -> None:
    policy = expr(resources("aws_sqs_queue")["main"].attr("redrive_policy"))
    assert "jsonencode" in policy
    assert re.search(r"deadLetterTargetArn\W+\$?\{?aws_sqs_queue\.dlq\.arn", policy), policy
    assert re.search(r"maxReceiveCount\W+\$?\{?var\.max_receive_count", policy), policy
    assert default("max_receive_count") == 25
    assert "redrive_policy" not in resources("aws_sqs_queue")["dlq"].raw


def test_dlq_accepts_only_the_source_queue() -> None:
    (allow,) = resources("aws_sqs_queue_redrive_allow_policy").values()
    assert expr(allow.attr("queue_url")) == "${aws_sqs_queue.dlq.id}"
    policy = expr(allow.attr("redrive_allow_policy"))
    assert re.search(r"redrivePermission\W+byQueue", policy), policy
    assert re.search(r"sourceQueueArns\W+\[\W*\$?\{?aws_sqs_queue\.main\.arn\W*\]", policy), policy


def test_retention_high_throughput_and_visibility() -> None:
    assert default("queue_message_retention_seconds") == 4 * 86400
    assert default("dlq_message_retention_seconds") == 14 * 86400
    assert default("queue_visibility_timeout_seconds") == 30  # the service's SQS2PG_VISIBILITY_TIMEOUT_S
    loc = locals_()
    assert re.search(r"var\.sqs_high_throughput \? \W*messageGroup\W* : \W*queue", expr(loc["deduplication_scope"]))
    assert re.search(
        r"var\.sqs_high_throughput \? \W*perMessageGroupId\W* : \W*perQueue", expr(loc["fifo_throughput_limit"])
    )
    for q in resources("aws_sqs_queue").values():
        assert expr(q.attr("deduplication_scope")) == "${local.deduplication_scope}"
        assert expr(q.attr("fifo_throughput_limit")) == "${local.fifo_throughput_limit}"


# --- Aurora ------------------------------------------------------------------------------------------------------


def test_aurora_cluster_is_encrypted_protected_backed_up_with_a_managed_master_secret() -> None:
    (cluster,) = resources("aws_rds_cluster").values()
    assert cluster.attr("engine") == "aurora-postgresql"
    assert cluster.attr("engine_mode") == "provisioned"
    assert cluster.attr("storage_encrypted") is True
    assert cluster.attr("manage_master_user_password") is True
    assert not cluster.has("master_password")
    assert expr(cluster.attr("deletion_protection")) == "${var.db_deletion_protection}"
    assert default("db_deletion_protection") is True
    assert expr(cluster.attr("backup_retention_period")) == "${var.db_backup_retention_days}"
    assert default("db_backup_retention_days") >= 1  # type: ignore[operator]
    assert any(">= 1" in c for c in validations("db_backup_retention_days"))
    # Serverless v2 as an option: the scaling block only when asked for, with db.serverless instances.
    (scaling,) = cluster.dynamic("serverlessv2_scaling_configuration")
    assert "var.db_serverless" in expr(scaling.attr("for_each"))
    assert re.search(
        r"var\.db_serverless \? \W*db\.serverless\W* : var\.db_instance_class", expr(locals_()["db_instance_type"])
    )


def test_engine_version_is_major_only_by_default_and_a_major_upgrade_is_explicit() -> None:
    (cluster,) = resources("aws_rds_cluster").values()
    assert default("db_engine_version") == "16"
    assert expr(cluster.attr("engine_version")) == "${var.db_engine_version}"
    (rule,) = validations("db_engine_version")
    assert "1[3-9]" in rule and "(\\\\.[0-9]+)?" in rule, rule  # a major, or a major.minor
    assert expr(cluster.attr("allow_major_version_upgrade")) == "${var.db_allow_major_version_upgrade}"
    assert default("db_allow_major_version_upgrade") is False
    # The parameter group follows the major version, so 17 brings a new group (created before the old goes).
    (pg,) = resources("aws_rds_cluster_parameter_group").values()
    assert expr(pg.attr("family")) == "aurora-postgresql${local.db_engine_major}"
    assert pg.blocks("lifecycle")[0].attr("create_before_destroy") is True


def test_a_pinned_minor_version_turns_auto_minor_upgrades_off() -> None:
    # "16.4" pins, "16" follows: auto minor upgrades on every instance only for a major-only version.
    assert expr(locals_()["db_engine_minor_pinned"]) == '${length(split(".", var.db_engine_version)) > 1}'
    code = (TF_DIR / "aurora.tf").read_text()
    for name, inst in resources("aws_rds_cluster_instance").items():
        assert expr(inst.attr("auto_minor_version_upgrade")) == "${!local.db_engine_minor_pinned}", name
        # checkov's CKV_AWS_226 wants it always on: skipped inline, with the reason.
        block = code.split(f'resource "aws_rds_cluster_instance" "{name}" {{', 1)[1].split("\n}", 1)[0]
        assert re.search(r"#checkov:skip=CKV_AWS_226:\S.{40,}", block), name


def test_apply_immediately_reaches_the_cluster_and_its_instances() -> None:
    (cluster,) = resources("aws_rds_cluster").values()
    assert expr(cluster.attr("apply_immediately")) == "${var.db_apply_immediately}"
    for name, inst in resources("aws_rds_cluster_instance").items():
        assert expr(inst.attr("apply_immediately")) == "${var.db_apply_immediately}", name
    assert default("db_apply_immediately") is False


def test_final_snapshot_name_is_unique_per_stack_and_stable_across_plans() -> None:
    (cluster,) = resources("aws_rds_cluster").values()
    # Always set (also with skip_final_snapshot), so switching db_skip_final_snapshot later needs nothing else.
    assert expr(cluster.attr("final_snapshot_identifier")) == "${local.db_final_snapshot}"
    assert expr(cluster.attr("skip_final_snapshot")) == "${var.db_skip_final_snapshot}"
    assert default("db_skip_final_snapshot") is False
    # Named after the stack's own KMS key (the cluster's storage key): new stack, new key, new name.
    assert expr(locals_()["db_final_snapshot"]) == "${var.name}-final-${substr(aws_kms_key.data.key_id, 0, 8)}"
    assert expr(cluster.attr("kms_key_id")) == "${aws_kms_key.data.arn}"
    # Nothing that changes from plan to plan, hence no ignore_changes to hide it.
    for lc in cluster.blocks("lifecycle"):
        assert "final_snapshot_identifier" not in expr(lc.raw.get("ignore_changes", ""))
    for path in tf_files():
        assert "plantimestamp(" not in code_without_comments(path) and "timestamp(" not in code_without_comments(path)


def test_deletion_protection_and_secret_recovery_window() -> None:
    assert default("db_deletion_protection") is True
    assert default("secret_recovery_window_days") == 7
    assert any("== 0" in c and ">= 7" in c and "<= 30" in c for c in validations("secret_recovery_window_days"))
    (secret,) = resources("aws_secretsmanager_secret").values()
    assert expr(secret.attr("recovery_window_in_days")) == "${var.secret_recovery_window_days}"


def test_instances_wait_for_the_monitoring_role_policy() -> None:
    for name, inst in resources("aws_rds_cluster_instance").items():
        assert "${aws_iam_role_policy_attachment.rds_monitoring}" in inst.attr("depends_on"), name


def test_tls_is_required_by_the_cluster_parameter_group() -> None:
    (pg,) = resources("aws_rds_cluster_parameter_group").values()
    params = {p.attr("name"): str(p.attr("value")) for p in pg.blocks("parameter")}
    assert params["rds.force_ssl"] == "1"
    (cluster,) = resources("aws_rds_cluster").values()
    assert expr(cluster.attr("db_cluster_parameter_group_name")) == "${aws_rds_cluster_parameter_group.this.name}"


def test_slow_and_failed_statements_are_logged_without_their_parameters() -> None:
    """The parameters of sqs2pg's INSERTs are the messages' bodies: none may reach CloudWatch Logs."""
    (pg,) = resources("aws_rds_cluster_parameter_group").values()
    params = {p.attr("name"): str(p.attr("value")) for p in pg.blocks("parameter")}
    assert params["log_min_duration_statement"] != "-1"  # slow statements are logged...
    assert params["log_parameter_max_length"] == "0"  # ...without their bind parameters
    assert params["log_parameter_max_length_on_error"] == "0"
    assert params.get("log_statement") in ("ddl", "none")  # "mod" or "all" would log every INSERT's text


def test_database_logins_are_the_ones_sqs2pg_uses_unless_asked_for() -> None:
    (cluster,) = resources("aws_rds_cluster").values()
    assert expr(cluster.attr("iam_database_authentication_enabled")) == "${var.db_iam_authentication}"
    assert default("db_iam_authentication") is False
    (proxy,) = resources("aws_db_proxy").values()
    (app_auth,) = proxy.blocks("auth")  # the application user only; the master user behind a variable
    assert expr(app_auth.attr("secret_arn")) == "${aws_secretsmanager_secret.app_database.arn}"
    (master,) = proxy.dynamic("auth")
    assert expr(master.attr("for_each")) == "${var.rds_proxy_allow_master_user ? [1] : []}"
    assert default("rds_proxy_allow_master_user") is False
    assert "var.rds_proxy_allow_master_user" in expr(
        next(st for st in data_sources("aws_iam_policy_document")["proxy"].blocks("statement")
             if st.attr("sid") == "ReadDatabaseSecrets").attr("resources")
    )  # fmt: skip


def test_the_database_url_verifies_the_proxy_by_default() -> None:
    tls = expr(outputs()["database_url_tls"].attr("value"))
    assert tls == '${var.enable_rds_proxy ? "sslmode=verify-full&sslrootcert=system" : "sslmode=require"}'
    assert default("enable_rds_proxy") is True
    readme = (TF_DIR / "README.md").read_text()
    assert "database_url_tls" in readme and 'sslmode=require"' not in readme


def test_writer_and_readers_are_spread_across_azs() -> None:
    inst = resources("aws_rds_cluster_instance")
    assert set(inst) == {"writer", "reader"}
    assert expr(inst["writer"].attr("availability_zone")) == "${var.db_availability_zones[0]}"
    assert expr(inst["reader"].attr("count")) == "${var.db_instance_count - 1}"
    # reader i goes to AZ i+1 (mod n): the first reader is never in the writer's AZ
    assert re.fullmatch(
        r"\$\{element\(var\.db_availability_zones, ?count\.index \+ 1\)\}",
        expr(inst["reader"].attr("availability_zone")),
    )
    assert default("db_instance_count") >= 2  # type: ignore[operator]
    assert any(">= 2" in c for c in validations("db_instance_count"))
    assert any("distinct(var.db_availability_zones)" in c for c in validations("db_availability_zones"))
    for name, i in inst.items():
        assert i.attr("publicly_accessible") is False, name


def test_db_and_proxy_security_groups_admit_only_security_groups() -> None:
    rules = resources("aws_vpc_security_group_ingress_rule")
    groups = resources("aws_security_group")
    for name in ("db", "proxy"):
        assert not groups[name].has("ingress"), f"aws_security_group.{name} must not have inline rules"
    assert "aws_security_group_rule" not in all_resources()
    sources: dict[str, set[str]] = {"db": set(), "proxy": set()}
    for name, rule in rules.items():
        target = expr(rule.attr("security_group_id"))
        for sg in ("db", "proxy"):
            if re.fullmatch(rf"\$\{{aws_security_group\.{sg}(\[0\])?\.id\}}", target):
                for forbidden in ("cidr_ipv4", "cidr_ipv6", "prefix_list_id"):
                    assert not rule.has(forbidden), f"{name}: {forbidden} on the {sg} security group"
                assert rule.attr("from_port") == rule.attr("to_port")
                assert expr(rule.attr("to_port")) == "${local.db_port}"
                sources[sg].add(expr(rule.attr("referenced_security_group_id")))
    assert sources["db"] == {"${aws_security_group.service.id}", "${aws_security_group.proxy[0].id}"}
    assert sources["proxy"] == {"${aws_security_group.service.id}"}
    assert expr(rules["db_from_proxy"].attr("count")) == "${var.enable_rds_proxy ? 1 : 0}"


def test_rds_proxy_requires_tls_and_reads_only_its_secrets() -> None:
    (proxy,) = resources("aws_db_proxy").values()
    assert proxy.attr("require_tls") is True
    assert proxy.attr("engine_family") == "POSTGRESQL"
    assert expr(proxy.attr("count")) == "${var.enable_rds_proxy ? 1 : 0}"
    (doc,) = [d for n, d in data_sources("aws_iam_policy_document").items() if n == "proxy"]
    actions = {a for s in doc.blocks("statement") for a in s.attr("actions")}
    assert actions == {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    for s in doc.blocks("statement"):
        assert "*" not in s.attr("resources")
    assert "aws_db_proxy_default_target_group" in all_resources() and "aws_db_proxy_target" in all_resources()


# --- IAM -----------------------------------------------------------------------------------------------------------


def _statements(name: str) -> list[tuple[list[str], list[str]]]:
    doc = data_sources("aws_iam_policy_document")[name]
    out = [(s.attr("actions"), s.attr("resources")) for s in doc.blocks("statement")]
    for dyn in doc.dynamic("statement"):
        (content,) = dyn.blocks("content")
        out.append((content.attr("actions"), content.attr("resources")))
    return out


def test_every_role_trust_policy_requires_this_account() -> None:
    """Every role a service assumes carries aws:SourceAccount (confused deputy), the FIS role included."""
    docs = data_sources("aws_iam_policy_document")
    roles = resources("aws_iam_role")
    assert {"task", "execution", "rds_monitoring", "proxy", "fis"} <= set(roles)
    for name, role in roles.items():
        trust = expr(role.attr("assume_role_policy"))
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)(\[0\])?\.json\}", trust)
        assert m, f"aws_iam_role.{name}: the trust policy must be an aws_iam_policy_document"
        for statement in docs[m.group(1)].blocks("statement"):
            assert statement.attr("actions") == ["sts:AssumeRole"], name
            conditions = {(c.attr("test"), c.attr("variable")): c.attr("values") for c in statement.blocks("condition")}
            assert conditions.get(("StringEquals", "aws:SourceAccount")) == ["${local.account_id}"], name


def test_failover_drill_is_off_by_default_and_may_only_fail_this_cluster_over() -> None:
    assert default("enable_failover_drill") is False
    for rtype in ("aws_fis_experiment_template", "aws_iam_role", "aws_iam_role_policy"):
        body = resources(rtype)["failover" if rtype == "aws_fis_experiment_template" else "fis"]
        assert expr(body.attr("count")) == "${var.enable_failover_drill ? 1 : 0}", rtype
    by_action = {a: res for actions, res in _statements("fis") for a in actions}
    # FailoverDBCluster on this cluster only; DescribeDBClusters (read-only) on *: FIS resolves the target
    # with it, without naming a cluster. Nothing else.
    assert by_action == {"rds:FailoverDBCluster": ["${aws_rds_cluster.this.arn}"], "rds:DescribeDBClusters": ["*"]}
    (template,) = resources("aws_fis_experiment_template").values()
    (action,) = template.blocks("action")
    assert action.attr("action_id") == "aws:rds:failover-db-cluster"
    (target,) = template.blocks("target")
    assert target.attr("resource_type") == "aws:rds:cluster"
    assert target.attr("resource_arns") == ["${aws_rds_cluster.this.arn}"]
    (stop,) = template.blocks("stop_condition")
    assert expr(stop.attr("value")) == "${aws_cloudwatch_metric_alarm.dlq_not_empty.arn}"
    assert expr(outputs()["failover_drill_template_id"].attr("value")).count("aws_fis_experiment_template.failover")


def test_task_role_is_least_privilege() -> None:
    statements = _statements("task")
    for actions, res in statements:
        for a in actions:
            assert "*" not in a, f"wildcard action {a}"
        for r in res:
            assert "*" not in r, f"wildcard resource {r}"
    by_resource: dict[str, set[str]] = {}
    for actions, res in statements:
        for r in res:
            by_resource.setdefault(r, set()).update(actions)
    assert by_resource["${aws_sqs_queue.main.arn}"] == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert by_resource["${aws_sqs_queue.dlq.arn}"] == {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    # KMS only with a configured key, aps:RemoteWrite only with the sidecar: both as dynamic statements
    doc = data_sources("aws_iam_policy_document")["task"]
    dyn = {expr(d.attr("for_each")): d.blocks("content")[0].attr("actions") for d in doc.dynamic("statement")}
    assert any("local.sqs_use_kms" in k and v == ["kms:Decrypt", "kms:GenerateDataKey"] for k, v in dyn.items()), dyn
    assert any("var.enable_adot_sidecar" in k and v == ["aps:RemoteWrite"] for k, v in dyn.items()), dyn
    # X-Ray's two write actions take no resource but "*": only with the sidecar's traces, and no other action so
    xray = {k: v for k, v in dyn.items() if "local.traces_enabled" in k}
    assert xray == {'${local.traces_enabled ? ["*"] : []}': ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]}
    assert expr(resources("aws_iam_role_policy")["task"].attr("policy")) == "${data.aws_iam_policy_document.task.json}"


def test_execution_role_reads_one_secret_and_pulls_from_its_repository() -> None:
    statements = _statements("execution")
    for actions, res in statements:
        if res == ["*"]:
            assert actions == ["ecr:GetAuthorizationToken"], "only GetAuthorizationToken may use Resource *"
        for a in actions:
            assert "*" not in a
    flat = {a: res for actions, res in statements for a in actions}
    assert flat["secretsmanager:GetSecretValue"] == ["${aws_secretsmanager_secret.app_database.arn}"]
    assert flat["ecr:BatchGetImage"] == ["${aws_ecr_repository.this.arn}"]
    assert flat["logs:PutLogEvents"] == ["${aws_cloudwatch_log_group.service.arn}:*"]
    roles = resources("aws_iam_role")
    assert (
        expr(resources("aws_ecs_task_definition")["this"].attr("execution_role_arn")) == "${aws_iam_role.execution.arn}"
    )
    assert expr(resources("aws_ecs_task_definition")["this"].attr("task_role_arn")) == "${aws_iam_role.task.arn}"
    assert {"task", "execution"} <= set(roles)


# --- ECS ---------------------------------------------------------------------------------------------------------


def test_container_stops_cleanly_within_stop_timeout() -> None:
    app = locals_()["app_container"]
    assert expr(app["stopTimeout"]) == "${var.stop_timeout_seconds}"
    # A stop cuts the long poll short and gives in-flight work the grace period, plus a few seconds.
    stop, grace = default("stop_timeout_seconds"), default("shutdown_grace_seconds")
    assert stop >= grace + 5, (stop, grace)  # type: ignore[operator]
    assert stop <= 120  # type: ignore[operator]
    env = locals_()["app_environment"]
    env_text = expr(env)
    assert "var.shutdown_grace_seconds" in env_text and "var.receive_wait_seconds" in env_text
    td = resources("aws_ecs_task_definition")["this"]
    conditions = [expr(p.attr("condition")) for lc in td.blocks("lifecycle") for p in lc.blocks("precondition")]
    assert any("var.stop_timeout_seconds >= var.shutdown_grace_seconds + 5" in c for c in conditions), conditions


def test_container_is_hardened_and_gets_its_database_url_as_a_secret() -> None:
    app = locals_()["app_container"]
    assert app["readonlyRootFilesystem"] is True
    assert app["user"] not in ("0", "root", "") and app["privileged"] is False
    assert app["essential"] is True
    (secret,) = app["secrets"]
    assert secret["name"] == "DATABASE_URL"
    assert secret["valueFrom"] == "${aws_secretsmanager_secret.app_database.arn}:DATABASE_URL::"
    env_text = expr(locals_()["app_environment"])
    assert "DATABASE_URL" not in env_text and "PASSWORD" not in env_text.upper()
    health = app["healthCheck"]["command"]
    assert health[0] == "CMD" and health[1] == "python" and "/healthz" in health[-1]
    logs = app["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == "${aws_cloudwatch_log_group.service.name}"
    group = resources("aws_cloudwatch_log_group")["service"]
    assert expr(group.attr("retention_in_days")) == "${var.log_retention_days}"


def test_behind_rds_proxy_the_service_pins_nothing_and_pinning_is_alarmed_on() -> None:
    env = expr(locals_()["app_environment"])
    # set before service_environment, which may say otherwise
    assert env.index('SQS2PG_DB_POOLER = var.enable_rds_proxy ? "transaction" : "none"') < env.index(
        "var.service_environment"
    ), env
    alarm = resources("aws_cloudwatch_metric_alarm")["proxy_pinned_connections"]
    assert alarm.attr("metric_name") == "DatabaseConnectionsCurrentlySessionPinned"
    assert expr(alarm.attr("count")) == "${var.enable_rds_proxy ? 1 : 0}"


def test_every_container_drops_every_linux_capability() -> None:
    for name in ("app_container", "adot_container"):
        caps = locals_()[name]["linuxParameters"]["capabilities"]
        assert caps["drop"] == ["ALL"] and caps["add"] == [], name


def test_image_tag_defaults_to_the_package_version() -> None:
    """README step 3 pushes the package's version as the tag; the default must name the same image."""
    assert default("image_tag") == __version__
    example = hcl2.loads((TF_DIR / "terraform.tfvars.example").read_text())
    assert clean(example)["image_tag"] == __version__


def test_vpc_endpoints_are_optional_and_narrow_the_tasks_egress() -> None:
    assert default("create_vpc_endpoints") is False
    services = expr(locals_()["vpc_endpoint_services"])
    for service in ("sqs", "secretsmanager", "ecr.api", "ecr.dkr", "logs", "aps-workspaces", "xray"):
        assert f'"{service}"' in services, service
    endpoints = resources("aws_vpc_endpoint")
    assert endpoints["interface"].attr("private_dns_enabled") is True
    assert endpoints["s3"].attr("vpc_endpoint_type") == "Gateway"
    egress = resources("aws_vpc_security_group_egress_rule")
    # with the endpoints, no HTTPS to anywhere: only to them and to S3's prefix list
    assert expr(egress["service_https"].attr("count")) == "${var.create_vpc_endpoints ? 0 : 1}"
    assert egress["service_https"].attr("cidr_ipv4") == "0.0.0.0/0"
    for name in ("service_to_endpoints", "service_to_s3"):
        assert expr(egress[name].attr("count")) == "${var.create_vpc_endpoints ? 1 : 0}"
        assert not egress[name].has("cidr_ipv4"), name
    (ingress,) = [r for n, r in resources("aws_vpc_security_group_ingress_rule").items() if n.startswith("endpoints")]
    assert expr(ingress.attr("referenced_security_group_id")) == "${aws_security_group.service.id}"


def test_adot_sidecar_is_optional_and_remote_writes_with_sigv4() -> None:
    adot = locals_()["adot_container"]
    assert adot["essential"] is False and adot["readonlyRootFilesystem"] is True
    assert [e["name"] for e in adot["environment"]] == ["AOT_CONFIG_CONTENT"]
    assert "aws-otel-collector" in default("adot_image")  # type: ignore[operator]
    assert re.search(
        r"var\.enable_adot_sidecar\s*\?\s*jsonencode\(\[local\.app_container, ?local\.adot_container\]\)"
        r"\s*:\s*jsonencode\(\[local\.app_container\]\)",
        expr(locals_()["container_definitions"]),
    ), expr(locals_()["container_definitions"])
    config = expr(locals_()["adot_config"])
    for needle in (
        "sigv4auth",
        "prometheusremotewrite",
        "localhost:${local.metrics_port}",
        "api/v1/remote_write",
        "aps",
    ):
        assert needle in config, needle
    # traces: sqs2pg -> OTLP/HTTP on loopback -> the sidecar -> X-Ray, only with adot_traces (on by default)
    assert default("adot_traces") is True and default("trace_sample_ratio") == 0.05
    for needle in ("otlp", "local.otlp_endpoint", "awsxray", "traces", "if local.traces_enabled"):
        assert needle in config, needle
    assert expr(locals_()["traces_enabled"]) == "${var.enable_adot_sidecar && var.adot_traces}"
    assert locals_()["otlp_endpoint"] == "127.0.0.1:4318"
    environment = expr(locals_()["app_environment"])
    for needle in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://${local.otlp_endpoint}",
        "OTEL_SERVICE_NAME",
        "parentbased_traceidratio",
        "var.trace_sample_ratio",
        "if local.traces_enabled",
    ):
        assert needle in environment, needle
    # the service's own settings come after, so service_environment can point OTEL_* elsewhere
    assert environment.index("OTEL_TRACES_SAMPLER") < environment.index("var.service_environment")
    (workspace,) = resources("aws_prometheus_workspace").values()
    assert expr(workspace.attr("count")) == "${var.create_amp_workspace ? 1 : 0}"


def test_service_runs_privately_with_a_deployment_circuit_breaker() -> None:
    svc = resources("aws_ecs_service")["this"]
    assert svc.attr("launch_type") == "FARGATE"
    (net,) = svc.blocks("network_configuration")
    assert net.attr("assign_public_ip") is False
    assert expr(net.attr("subnets")) == "${var.private_subnet_ids}"
    (breaker,) = svc.blocks("deployment_circuit_breaker")
    assert breaker.attr("enable") is True and breaker.attr("rollback") is True
    (cluster,) = resources("aws_ecs_cluster").values()
    settings = {s.attr("name"): s.attr("value") for s in cluster.blocks("setting")}
    assert settings == {"containerInsights": "enabled"}


def test_service_rebalances_azs_and_waits_for_its_role_policies() -> None:
    svc = resources("aws_ecs_service")["this"]
    # AWS's default for new services; the provider would otherwise send DISABLED.
    assert svc.attr("availability_zone_rebalancing") == "ENABLED"
    assert set(svc.attr("depends_on")) >= {"${aws_iam_role_policy.task}", "${aws_iam_role_policy.execution}"}


def test_queue_max_message_size_is_set_on_both_queues_within_the_provider_cap() -> None:
    assert default("queue_max_message_size") == 262144
    assert any("<= 262144" in c for c in validations("queue_max_message_size"))
    for name, q in resources("aws_sqs_queue").items():
        assert expr(q.attr("max_message_size")) == "${var.queue_max_message_size}", name


def test_metrics_port_is_open_only_to_the_scraper_security_group() -> None:
    rules = {
        n: r
        for n, r in resources("aws_vpc_security_group_ingress_rule").items()
        if expr(r.attr("security_group_id")) == "${aws_security_group.service.id}"
    }
    assert list(rules) == ["service_metrics_from_scraper"]
    rule = rules["service_metrics_from_scraper"]
    assert expr(rule.attr("count")) == '${var.metrics_scraper_security_group_id == "" ? 0 : 1}'
    assert expr(rule.attr("referenced_security_group_id")) == "${var.metrics_scraper_security_group_id}"
    assert default("metrics_scraper_security_group_id") == ""


def test_autoscaling_tracks_backlog_per_task_with_metric_math() -> None:
    (policy,) = resources("aws_appautoscaling_policy").values()
    assert policy.attr("policy_type") == "TargetTrackingScaling"
    (tt,) = policy.blocks("target_tracking_scaling_policy_configuration")
    assert expr(tt.attr("target_value")) == "${var.backlog_per_task_target}"
    (spec,) = tt.blocks("customized_metric_specification")
    metrics = {m.attr("id"): m for m in spec.blocks("metrics")}
    names = {
        i: m.blocks("metric_stat")[0].blocks("metric")[0].attr("metric_name")
        for i, m in metrics.items()
        if m.blocks("metric_stat")
    }
    assert names == {"visible": "ApproximateNumberOfMessagesVisible", "tasks": "RunningTaskCount"}
    returned = [i for i, m in metrics.items() if m.attr("return_data") is True]
    assert returned == ["backlog_per_task"]
    assert metrics["backlog_per_task"].attr("expression") == "visible / tasks"
    assert any(">= 1" in c for c in validations("min_tasks"))


# --- alarms, ECR, outputs ---------------------------------------------------------------------------------------


def test_alarms_watch_the_dlq_and_the_oldest_message() -> None:
    alarms = resources("aws_cloudwatch_metric_alarm")
    dlq, age = alarms["dlq_not_empty"], alarms["oldest_message_age"]
    assert dlq.attr("metric_name") == "ApproximateNumberOfMessagesVisible" and dlq.attr("namespace") == "AWS/SQS"
    assert dlq.attr("dimensions") == {"QueueName": "${aws_sqs_queue.dlq.name}"}
    assert dlq.attr("threshold") == 0 and dlq.attr("comparison_operator") == "GreaterThanThreshold"
    assert age.attr("metric_name") == "ApproximateAgeOfOldestMessage"
    assert age.attr("dimensions") == {"QueueName": "${aws_sqs_queue.main.name}"}
    assert expr(age.attr("threshold")) == "${var.alarm_oldest_message_age_seconds}"
    for a in alarms.values():
        assert expr(a.attr("alarm_actions")) == "${local.alarm_actions}"
    assert "var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]" in expr(locals_()["alarm_actions"])
    assert default("alarm_sns_topic_arn") is None


def test_ecr_repository_is_immutable_scanned_and_encrypted() -> None:
    (repo,) = resources("aws_ecr_repository").values()
    assert repo.attr("image_tag_mutability") == "IMMUTABLE"
    assert repo.blocks("image_scanning_configuration")[0].attr("scan_on_push") is True
    assert repo.blocks("encryption_configuration")[0].attr("encryption_type") in ("KMS", "AES256")


def test_outputs() -> None:
    out = outputs()
    required = {
        "queue_url",
        "dlq_url",
        "queue_arn",
        "dlq_arn",
        "db_cluster_endpoint",
        "db_reader_endpoint",
        "db_proxy_endpoint",
        "ecr_repository_url",
        "db_master_secret_arn",
        "amp_workspace_endpoint",
        "service_security_group_id",
    }
    assert required <= set(out), required - set(out)
    assert (
        expr(out["db_proxy_endpoint"].attr("value")) == "${var.enable_rds_proxy ? aws_db_proxy.this[0].endpoint : null}"
    )
    for name, o in out.items():
        assert o.attr("description", ""), f"output {name} needs a description"
