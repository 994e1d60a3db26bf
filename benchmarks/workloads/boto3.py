"""Workload for the `boto3` environment: a presigned S3 URL, computed offline.

Creates an S3 client with an explicit region and dummy credentials, generates a presigned
GET URL, and loads a second service model (DynamoDB). No network. Exit 0 on success.
"""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import boto3


def main() -> int:
    session = boto3.session.Session(
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="dummy-secret-key-for-benchmarks-only",
        region_name="eu-west-1",
    )
    s3 = session.client("s3")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bench-bucket", "Key": "a/b.txt"}, ExpiresIn=600)
    assert url.startswith("https://") and "Signature=" in url, url
    ddb = session.client("dynamodb")
    assert "PutItem" in ddb.meta.service_model.operation_names
    print("boto3 ok", url.split("?")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
