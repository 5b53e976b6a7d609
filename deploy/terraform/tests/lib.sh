# Shell helpers for running the Terraform module against moto, sourced (not run) by scripts/check-terraform.sh
# and scripts/terraform-moto-apply.sh: one copy of the provider lookup, the working copy of the module, moto's
# start and stop, and the endpoint override. The caller sets `set -euo pipefail` and ROOT (the repository).

# tf_find_provider: sets PLUGIN_DIR (the folder to pass as -plugin-dir: the one holding registry.terraform.io)
# and PROVIDER_VERSION, or returns 1 when the terraform CLI or the local provider mirror is missing (FACTS.md:
# the registry is not reachable from project machines).
tf_find_provider() {
  # No CLI configuration at all (no ~/.terraformrc, no provider_installation, no credentials of the user); this
  # machine's TF_CLI_CONFIG_FILE names a file that does not exist, and terraform warns about it on every call.
  export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null
  command -v terraform >/dev/null || { TF_MISSING="no terraform CLI on the PATH"; return 1; }
  local provider
  provider=$(find / -xdev -path '*/registry.terraform.io/hashicorp/aws/*' -name 'terraform-provider-aws_*' 2>/dev/null | head -1 || true)
  [ -n "$provider" ] || { TF_MISSING="no local mirror of the AWS provider (registry.terraform.io/hashicorp/aws)"; return 1; }
  PLUGIN_DIR=${provider%%/registry.terraform.io/*}
  PROVIDER_VERSION=$(basename "$(dirname "$(dirname "$provider")")")
}

# tf_workdir PREFIX: a scratch folder WORK (removed on exit, with moto stopped) holding a copy of the module,
# so no .terraform or state ever lands in the repository; dummy AWS credentials.
tf_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  MOTO_PID=""
  trap tf_cleanup EXIT
  cp -r "$ROOT/deploy/terraform" "$WORK/module"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
}

tf_cleanup() {
  # Only the moto server this script started, by its PID.
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  rm -rf "${WORK:?}"
}

# tf_init: `terraform init` of the working copy from the local mirror (run inside $WORK/module).
tf_init() {
  terraform init -backend=false -plugin-dir="$PLUGIN_DIR" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; return 1; }
}

# moto_start: moto's server on a free loopback port, through deploy/terraform/tests/moto_tf_server.py (stock moto
# plus the few calls the module makes that moto lacks); sets MOTO_URL and MOTO_PID, log in $WORK/moto.log.
moto_start() {
  local port
  port=$("$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MOTO_IAM_LOAD_MANAGED_POLICIES=true "$ROOT/.venv/bin/python" "$ROOT/deploy/terraform/tests/moto_tf_server.py" \
    -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "$MOTO_URL/moto-api/" && return 0
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/moto.log" >&2
  echo "moto did not start on $MOTO_URL" >&2
  return 1
}

# moto_override: every endpoint of the provider pointed at moto (written beside the module, test only).
moto_override() {
  sed "s#MOTO#$MOTO_URL#" "$ROOT/deploy/terraform/tests/moto_override.tf.in" >"$WORK/module/moto_override.tf"
}

# moto_network: a VPC with three subnets (eu-west-1a, b, c) in moto, for an apply (a plan does not look them up);
# sets NETWORK_VARS to the -var arguments naming them.
moto_network() {
  local out
  out=$("$ROOT/.venv/bin/python" - "$MOTO_URL" <<'PY'
import json
import sys

import boto3

ec2 = boto3.client(
    "ec2", endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [
    ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"eu-west-1{az}")["Subnet"]["SubnetId"]
    for i, az in enumerate("abc")
]
print(vpc)
print(json.dumps(subnets))
PY
)
  NETWORK_VARS=(-var "vpc_id=$(sed -n 1p <<<"$out")" -var "private_subnet_ids=$(sed -n 2p <<<"$out")")
}
