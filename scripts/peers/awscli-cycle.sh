#!/usr/bin/env bash
# Peer 1: the same cycle done by hand with the AWS CLI, one process per call (13 calls):
# CreateKey, CreateAlias, PutKeyPolicy, CreateRole, PutRolePolicy, AssumeRole, Encrypt, Decrypt,
# DeleteRolePolicy, DeleteRole, DeleteAlias, ScheduleKeyDeletion.
# Usage: awscli-cycle.sh OWNER_PROFILE USER_PROFILE OWNER_ACCOUNT USER_ACCOUNT REGION ALIAS
set -euo pipefail
owner="$1" user="$2" owner_account="$3" user_account="$4" region="$5" alias="$6"
role="peer-$(echo "${alias#alias/}" | tr '/' '-')"
alias_arn="arn:aws:kms:$region:$owner_account:$alias"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

key_id=$(aws --profile "$owner" --region "$region" kms create-key --query KeyMetadata.KeyId --output text)
aws --profile "$owner" --region "$region" kms create-alias --alias-name "$alias" --target-key-id "$key_id"
cat >"$work/key-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$owner_account:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"CrossAccountUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$user_account:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}
JSON
aws --profile "$owner" --region "$region" kms put-key-policy --key-id "$key_id" --policy-name default --policy "file://$work/key-policy.json"
cat >"$work/trust.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::$user_account:root"},"Action":"sts:AssumeRole"}]}
JSON
role_arn=$(aws --profile "$user" --region "$region" iam create-role --role-name "$role" \
  --assume-role-policy-document "file://$work/trust.json" --query Role.Arn --output text)
cat >"$work/role-policy.json" <<JSON
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],
 "Resource":"arn:aws:kms:$region:$owner_account:key/*",
 "Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"$alias"}}}]}
JSON
aws --profile "$user" --region "$region" iam put-role-policy --role-name "$role" --policy-name access \
  --policy-document "file://$work/role-policy.json"
read -r ak sk token < <(aws --profile "$user" --region "$region" sts assume-role --role-arn "$role_arn" \
  --role-session-name peer --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
endpoint="${AWS_ENDPOINT_URL:-$(aws --profile "$user" configure get endpoint_url || true)}"
head -c 32 /dev/urandom >"$work/plain"
as_role() {
  env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_SESSION_TOKEN="$token" \
    ${endpoint:+AWS_ENDPOINT_URL="$endpoint"} AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    aws --region "$region" "$@"
}
as_role kms encrypt --key-id "$alias_arn" --plaintext "fileb://$work/plain" \
  --query CiphertextBlob --output text | base64 -d >"$work/cipher"
as_role kms decrypt --key-id "$alias_arn" --ciphertext-blob "fileb://$work/cipher" \
  --query Plaintext --output text | base64 -d >"$work/back"
cmp -s "$work/plain" "$work/back" || { echo "round trip mismatch" >&2; exit 1; }
aws --profile "$user" --region "$region" iam delete-role-policy --role-name "$role" --policy-name access
aws --profile "$user" --region "$region" iam delete-role --role-name "$role"
aws --profile "$owner" --region "$region" kms delete-alias --alias-name "$alias"
aws --profile "$owner" --region "$region" kms schedule-key-deletion --key-id "$key_id" --pending-window-in-days 7 >/dev/null
