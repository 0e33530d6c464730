//! A moto server that checks credentials, as S3 does: signatures, key ids and IAM
//! permissions. The shared moto of [`super::moto`] accepts any request; this one answers a
//! wrong secret with `SignatureDoesNotMatch`, an unknown key id with `InvalidAccessKeyId`
//! and a user without permission with `AccessDenied`. Started once per test binary.

use std::process::Command;
use std::sync::OnceLock;

use super::{Moto, find_python, start_moto};

/// The checking moto server, its bucket and two users' keys.
pub struct AuthMoto {
    pub moto: Moto,
    /// A bucket that exists.
    pub bucket: String,
    /// A user allowed everything on S3.
    pub key_id: String,
    pub secret: String,
    /// A user allowed nothing.
    pub denied_key_id: String,
    pub denied_secret: String,
}

impl AuthMoto {
    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.moto.host, self.moto.port)
    }

    /// A store URL on `bucket` of this server.
    pub fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}/p?endpoint={}", self.endpoint())
    }
}

/// Makes the users, their keys and the bucket while moto still accepts anything, then
/// turns its checks on (`/moto-api/reset-auth`, moto's switch for `INITIAL_NO_AUTH_ACTION_COUNT`).
const SETUP: &str = r#"import json, sys, urllib.request
import boto3
endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
boto3.client("s3", **kw).create_bucket(Bucket="checked")
allow = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
keys = []
for user, policy in [("writer", allow), ("nobody", None)]:
    iam.create_user(UserName=user)
    if policy:
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=user)["AccessKey"]
    keys += [k["AccessKeyId"], k["SecretAccessKey"]]
urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                              headers={"Content-Type": "text/plain"}))
print(" ".join(keys))
"#;

/// The shared checking moto server.
pub fn auth_moto() -> &'static AuthMoto {
    static AUTH: OnceLock<AuthMoto> = OnceLock::new();
    AUTH.get_or_init(|| {
        let moto = start_moto("127.0.0.1");
        let endpoint = format!("http://{}:{}", moto.host, moto.port);
        let out = Command::new(find_python())
            .args(["-c", SETUP, &endpoint])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .expect("run python to set up moto's users");
        assert!(
            out.status.success(),
            "set up moto's users (needs boto3, installed with moto by tests/run.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        AuthMoto {
            moto,
            bucket: "checked".into(),
            key_id: keys[0].clone(),
            secret: keys[1].clone(),
            denied_key_id: keys[2].clone(),
            denied_secret: keys[3].clone(),
        }
    })
}
