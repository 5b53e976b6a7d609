#!/usr/bin/env bash
# The Terraform module checked by the real tools: `terraform fmt -check`, `validate`, `terraform test` (mock
# provider: the cases the module must refuse, and what it must build), and `plan` against moto's server for a
# matrix of tfvars (every endpoint pointed at moto; dummy credentials). Offline: the AWS provider comes from
# the local plugin mirror (FACTS.md: /opt/tf-plugins), never the registry.
#   scripts/check-terraform.sh            everything
# When the terraform CLI or the provider mirror is missing this says so loudly and skips (exit 0); any other
# failure fails. The full apply, read back and destroy against moto is scripts/terraform-moto-apply.sh
# (occasional, not a gate: it takes minutes). Both share deploy/terraform/tests/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=../deploy/terraform/tests/lib.sh
. deploy/terraform/tests/lib.sh
if ! tf_find_provider; then
  echo "!! check-terraform: SKIPPED: $TF_MISSING" >&2
  exit 0
fi
[ -x .venv/bin/python ] || scripts/bootstrap.sh local
started=$(date +%s)

echo "== terraform fmt -check (terraform $(terraform version | head -1 | cut -d' ' -f2), provider $PROVIDER_VERSION)"
terraform fmt -check -recursive deploy/terraform || { echo "terraform fmt: run terraform fmt -recursive deploy/terraform" >&2; exit 1; }

tf_workdir sqs2pg-tf
cd "$WORK/module"
tf_init
echo "== terraform validate"
terraform validate -no-color

echo "== terraform test (mock provider)"
terraform test -no-color 2>&1 | tee "$WORK/test.log" | grep -E "^(tests/|Success|Failure)|run \".*\"\\.\\.\\. (pass|fail)" || true
grep -q "^Success!" "$WORK/test.log" || { cat "$WORK/test.log"; exit 1; }

echo "== terraform plan against moto (tfvars matrix)"
moto_start
moto_override

# plan NAME [-var ...]: the example tfvars plus the given variables must plan.
plan() {
  local name=$1 log="$WORK/plan-$1.log" t0
  shift
  t0=$(date +%s)
  terraform plan -no-color -lock=false -refresh=false -var-file=terraform.tfvars.example "$@" >"$log" 2>&1 \
    || { cat "$log"; echo "FAIL  $name: the plan failed" >&2; return 1; }
  echo "ok    $name: $(grep -o 'Plan: [0-9]* to add' "$log") ($(($(date +%s) - t0)) s)"
}
# refuse NAME TEXT [-var ...]: the module must refuse the plan, with an error containing TEXT.
refuse() {
  local name=$1 text=$2 log="$WORK/plan-$1.log"
  shift 2
  if terraform plan -no-color -lock=false -refresh=false -var-file=terraform.tfvars.example "$@" >"$log" 2>&1; then
    echo "FAIL  $name: planned, but the module must refuse it" >&2
    return 1
  fi
  tr -d '\n│' <"$log" | tr -s ' ' | grep -qF "$text" || { cat "$log"; echo "FAIL  $name: refused, but not with: $text" >&2; return 1; }
  echo "ok    $name: refused: $text"
}
plan example
plan serverless-min-0 -var db_serverless=true -var db_serverless_min_capacity=0 -var db_serverless_max_capacity=4
plan no-proxy -var enable_rds_proxy=false
plan amp-adot -var create_amp_workspace=true -var enable_adot_sidecar=true
plan kms-high-throughput -var 'sqs_kms_key_arn=arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555' -var sqs_high_throughput=true
plan failover-drill -var enable_failover_drill=true -var secret_recovery_window_days=0
plan vpc-endpoints -var create_vpc_endpoints=true -var 'vpc_endpoint_route_table_ids=["rtb-0123456789abcdef0"]'
refuse serverless-max-not-above-min "db_serverless_max_capacity must be above db_serverless_min_capacity" \
  -var db_serverless=true -var db_serverless_min_capacity=4 -var db_serverless_max_capacity=4
refuse adot-without-amp "enable_adot_sidecar needs an AMP workspace" -var enable_adot_sidecar=true
refuse stop-timeout-below-grace "stop_timeout_seconds must be at least shutdown_grace_seconds + 5" \
  -var stop_timeout_seconds=20 -var shutdown_grace_seconds=20
refuse max-tasks-below-min "max_tasks must be at least min_tasks" -var min_tasks=3 -var max_tasks=2
refuse engine-version "db_engine_version must be a major version" -var db_engine_version=latest
refuse message-size "queue_max_message_size must be from 1,024 to 262,144" -var queue_max_message_size=1048576
refuse recovery-window "secret_recovery_window_days must be 0 or from 7 to 30" -var secret_recovery_window_days=3
refuse vpc-endpoints-without-route-tables "create_vpc_endpoints needs vpc_endpoint_route_table_ids" \
  -var create_vpc_endpoints=true
echo "check-terraform: passed in $(($(date +%s) - started)) s"
