#!/usr/bin/env bash
# Occasional, not a gate: a full `terraform apply`, read back and `destroy` of the module against moto's server
# (every endpoint overridden, as scripts/check-terraform.sh plans it). Stock moto lacks some calls the module
# makes (SetQueueAttributes with RedriveAllowPolicy, Application Auto Scaling's tag calls), so on stock moto
# the apply stops there: the script reports the first resource that failed and what was created before it.
#   scripts/terraform-moto-apply.sh [extra terraform -var arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
provider=$(find / -xdev -path '*/registry.terraform.io/hashicorp/aws/*' -name 'terraform-provider-aws_*' 2>/dev/null | head -1 || true)
[ -n "$provider" ] && command -v terraform >/dev/null || { echo "terraform-moto-apply: needs terraform and the provider mirror" >&2; exit 2; }
[ -x .venv/bin/python ] || scripts/bootstrap.sh local
WORK=$(mktemp -d /tmp/sqs2pg-tf-apply.XXXXXX)
moto_pid=""
trap '[ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null; rm -rf "$WORK"' EXIT
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1

cp -r deploy/terraform "$WORK/module" && cd "$WORK/module"
port=$("$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$ROOT/.venv/bin/python" -m moto.server -p "$port" >"$WORK/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.1; done
sed "s#MOTO#http://127.0.0.1:$port#" "$ROOT/deploy/terraform/tests/moto_override.tf.in" >moto_override.tf
terraform init -backend=false -plugin-dir="${provider%%/registry.terraform.io/*}" >/dev/null
vars=(-var-file=terraform.tfvars.example -var db_deletion_protection=false -var db_skip_final_snapshot=true
      -var secret_recovery_window_days=0 "$@")

echo "== apply"
if timeout 600 terraform apply -no-color -auto-approve "${vars[@]}" >"$WORK/apply.log" 2>&1; then
  echo "applied: $(terraform state list | wc -l) resources"
else
  echo "apply stopped after $(terraform state list | wc -l) resources; the first error:"
  grep -m1 -A6 "Error:" "$WORK/apply.log" || tail -20 "$WORK/apply.log"
fi
echo "== read back"
terraform state list | sed 's/^/  /'
for r in aws_sqs_queue.main aws_rds_cluster.this aws_ecs_service.this; do
  terraform state show -no-color "$r" 2>/dev/null | grep -E '^\s+(name|max_message_size|engine_version|engine_version_actual|availability_zone_rebalancing|fifo_queue) ' | sed "s/^/  $r: /" || true
done
echo "== plan after apply (changes moto does not keep show here)"
terraform plan -no-color -detailed-exitcode "${vars[@]}" >"$WORK/replan.log" 2>&1 && echo "  no changes" \
  || grep -E "^  # |Plan:" "$WORK/replan.log" | head -20
echo "== destroy"
timeout 600 terraform destroy -no-color -auto-approve "${vars[@]}" >"$WORK/destroy.log" 2>&1 \
  && echo "destroyed; $(terraform state list | wc -l) resources left" \
  || { echo "destroy failed:"; grep -m1 -A6 "Error:" "$WORK/destroy.log"; exit 1; }
