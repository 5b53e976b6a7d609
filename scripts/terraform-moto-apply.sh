#!/usr/bin/env bash
# Occasional, not a gate: a full `terraform apply`, read back, re-plan and `destroy` of the module against moto's
# server (every endpoint overridden, as scripts/check-terraform.sh plans it; shared helpers in
# deploy/terraform/tests/lib.sh). moto runs through deploy/terraform/tests/moto_tf_server.py, which adds the calls
# stock moto lacks (SQS RedriveAllowPolicy, Application Auto Scaling tags); without them the apply hangs.
# What moto does not model (Aurora failover, ECS tasks, FIS experiments) is not exercised: this proves the
# module's create and destroy order and what the provider reads back, nothing about AWS's behaviour.
#   scripts/terraform-moto-apply.sh [extra terraform -var arguments, e.g. -var enable_failover_drill=true]
# Exit 0 when apply and destroy both complete and nothing is left in the state; prints timings and counts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=../deploy/terraform/tests/lib.sh
. deploy/terraform/tests/lib.sh
tf_find_provider || { echo "terraform-moto-apply: $TF_MISSING" >&2; exit 2; }
[ -x .venv/bin/python ] || scripts/bootstrap.sh local
started=$(date +%s)

tf_workdir sqs2pg-tf-apply
cd "$WORK/module"
moto_start
moto_override
moto_network
tf_init
vars=(-var-file=terraform.tfvars.example "${NETWORK_VARS[@]}" -var db_deletion_protection=false
      -var db_skip_final_snapshot=true -var secret_recovery_window_days=0 "$@")

echo "== apply (terraform $(terraform version | head -1 | cut -d' ' -f2), provider $PROVIDER_VERSION)"
t0=$(date +%s)
if timeout 900 terraform apply -no-color -auto-approve "${vars[@]}" >"$WORK/apply.log" 2>&1; then
  echo "applied: $(terraform state list | wc -l) resources in the state ($(grep -o 'Apply complete! Resources: [0-9]* added' "$WORK/apply.log")) in $(($(date +%s) - t0)) s"
else
  echo "FAIL apply stopped after $(($(date +%s) - t0)) s with $(terraform state list | wc -l) resources; the first error:" >&2
  grep -m1 -A8 "Error:" "$WORK/apply.log" >&2 || tail -20 "$WORK/apply.log" >&2
  applied=no
fi

echo "== read back"
for r in aws_sqs_queue.main aws_sqs_queue.dlq aws_sqs_queue_redrive_allow_policy.dlq aws_rds_cluster.this \
  aws_rds_cluster_instance.writer aws_ecs_service.this aws_appautoscaling_target.service; do
  terraform state show -no-color "$r" 2>/dev/null \
    | grep -E '^\s+(name|max_message_size|fifo_queue|redrive_allow_policy|engine_version|final_snapshot_identifier|auto_minor_version_upgrade|apply_immediately|availability_zone_rebalancing|max_capacity) ' \
    | sed -E "s/^\s+/  $r: /" || true
done

echo "== plan after apply (what moto does not keep shows here as changes)"
if terraform plan -no-color -detailed-exitcode "${vars[@]}" >"$WORK/replan.log" 2>&1; then
  echo "  no changes"
else
  # each resource and the attributes moto did not keep (e.g. availability_zone_rebalancing, not modelled)
  grep -E "^  # aws_|^ +~ [a-z_]+ +=|^Plan:|Error:" "$WORK/replan.log" | grep -v "will be read during apply" \
    | head -40 | sed 's/^/  /'
fi

echo "== destroy"
t0=$(date +%s)
timeout 900 terraform destroy -no-color -auto-approve "${vars[@]}" >"$WORK/destroy.log" 2>&1 \
  || { echo "FAIL destroy:" >&2; grep -m1 -A8 "Error:" "$WORK/destroy.log" >&2; exit 1; }
left=$(terraform state list | wc -l)
echo "destroyed ($(grep -o 'Resources: [0-9]* destroyed' "$WORK/destroy.log")) in $(($(date +%s) - t0)) s; $left resources left"
[ "${applied:-yes}" = yes ] && [ "$left" -eq 0 ] || exit 1
echo "terraform-moto-apply: passed in $(($(date +%s) - started)) s"
