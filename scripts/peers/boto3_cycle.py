"""Peer 2: the same 13 calls from one boto3 process, sequentially.

Usage: boto3_cycle.py OWNER_PROFILE USER_PROFILE OWNER_ACCOUNT USER_ACCOUNT REGION ALIAS
"""

import json
import os
import sys

import boto3


def main(owner, user, owner_account, user_account, region, alias):
    role = "peer-" + alias[len("alias/"):].replace("/", "-")
    alias_arn = f"arn:aws:kms:{region}:{owner_account}:{alias}"
    owner_s = boto3.Session(profile_name=owner, region_name=region)
    user_s = boto3.Session(profile_name=user, region_name=region)
    kms = owner_s.client("kms")
    iam = user_s.client("iam")
    sts = user_s.client("sts")

    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{owner_account}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "CrossAccountUse", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{user_account}:root"},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
        ],
    }))
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{user_account}:root"},
                       "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="access", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
                       "Resource": f"arn:aws:kms:{region}:{owner_account}:key/*",
                       "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": alias}}}],
    }))
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="peer")["Credentials"]
    role_kms = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"], region_name=region,
    ).client("kms", endpoint_url=kms.meta.endpoint_url)
    plain = os.urandom(32)
    blob = role_kms.encrypt(KeyId=alias_arn, Plaintext=plain)["CiphertextBlob"]
    back = role_kms.decrypt(KeyId=alias_arn, CiphertextBlob=blob)["Plaintext"]
    if back != plain:
        sys.exit("round trip mismatch")
    iam.delete_role_policy(RoleName=role, PolicyName="access")
    iam.delete_role(RoleName=role)
    kms.delete_alias(AliasName=alias)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)


if __name__ == "__main__":
    main(*sys.argv[1:7])
