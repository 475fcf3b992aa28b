//! Amazon S3 sources: `s3://bucket/key`, `arn:<partition>:s3:::bucket/key` and access point ARNs
//! `arn:<partition>:s3:<region>:<account>:accesspoint/<name>/object/<key>`, each with an optional
//! `?versionId=`. Requests are plain HTTPS GETs to the dual-stack endpoints, anonymous or signed
//! with AWS Signature Version 4 when credentials are supplied.

use super::url::{percent_decode, percent_encode, query_param, Url};
use super::Error;
use sha2::{Digest, Sha256};
use std::fmt;

/// AWS credentials for signed S3 requests. `Debug` does not show the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where an S3 object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Object {
    /// AWS partition from an ARN; None for `s3://` URLs.
    pub partition: Option<String>,
    pub bucket: Bucket,
    /// Object key, decoded.
    pub key: Vec<u8>,
    pub version_id: Option<String>,
    /// For logs and errors.
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bucket {
    Named(String),
    AccessPoint {
        name: String,
        account: String,
        region: String,
    },
}

fn invalid(display: &str, reason: &str) -> Error {
    Error::S3 {
        url: display.to_string(),
        reason: reason.to_string(),
    }
}

impl S3Object {
    pub fn parse(url: &Url) -> Result<S3Object, Error> {
        let display = url.redacted();
        let version_id = match url
            .query
            .as_deref()
            .and_then(|q| query_param(q, "versionId"))
        {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => return Err(invalid(&display, e.0)),
            None => None,
        };
        let decode = |s: &str| percent_decode(s).map_err(|e| invalid(&display, e.0));
        if url.scheme == "s3" {
            if url.host.is_empty() {
                return Err(invalid(&display, "missing bucket name"));
            }
            let key = decode(url.path.strip_prefix('/').unwrap_or(&url.path))?;
            return Ok(S3Object {
                partition: None,
                bucket: Bucket::Named(url.host.clone()),
                key,
                version_id,
                display,
            });
        }
        // arn:partition:service:region:account:resource
        let parts: Vec<&str> = url.path.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(invalid(&display, "malformed arn"));
        };
        if service != "s3" {
            return Err(invalid(&display, "arn is not for the s3 service"));
        }
        let (bucket, key) = if let Some(rest) = resource.strip_prefix("accesspoint/") {
            let (name, key) = rest
                .split_once("/object/")
                .ok_or_else(|| invalid(&display, "access point arn has no object"))?;
            if region.is_empty() || account.is_empty() || name.is_empty() {
                return Err(invalid(
                    &display,
                    "access point arn needs a region and an account",
                ));
            }
            let bucket = Bucket::AccessPoint {
                name: name.to_string(),
                account: account.to_string(),
                region: region.to_string(),
            };
            (bucket, key)
        } else {
            let (bucket, key) = resource
                .split_once('/')
                .ok_or_else(|| invalid(&display, "arn has no object key"))?;
            if bucket.is_empty() {
                return Err(invalid(&display, "missing bucket name"));
            }
            (Bucket::Named(bucket.to_string()), key)
        };
        Ok(S3Object {
            partition: Some(partition.to_string()),
            bucket,
            key: decode(key)?,
            version_id,
            display,
        })
    }

    /// The region hint for `GetBucketRegion`: the partition's default region.
    pub fn partition_default_region(&self) -> Option<&'static str> {
        match self.partition.as_deref()? {
            "aws" => Some("us-east-1"),
            "aws-cn" => Some("cn-north-1"),
            "aws-us-gov" => Some("us-gov-west-1"),
            _ => None,
        }
    }

    fn domain(&self) -> Result<&'static str, Error> {
        match self.partition.as_deref() {
            None | Some("aws") | Some("aws-us-gov") => Ok("amazonaws.com"),
            Some("aws-cn") => Ok("amazonaws.com.cn"),
            Some(_) => Err(invalid(&self.display, "unsupported aws partition")),
        }
    }

    /// Canonical URI of the object below a bucket root: every key byte but `/` escaped once.
    fn key_path(&self) -> String {
        format!("/{}", percent_encode(&self.key, b"/"))
    }

    fn query(&self) -> Option<String> {
        self.version_id
            .as_ref()
            .map(|v| format!("versionId={}", percent_encode(v.as_bytes(), b"")))
    }

    /// The URL that `HEAD` is sent to for `GetBucketRegion`.
    pub fn probe_url(&self, endpoint: Option<&str>, hint: &str) -> Result<Option<Url>, Error> {
        let Bucket::Named(bucket) = &self.bucket else {
            return Ok(None);
        };
        let s = match endpoint {
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None if virtual_host_ok(bucket) => {
                format!("https://{bucket}.s3.dualstack.{hint}.{}/", self.domain()?)
            }
            None => format!("https://s3.dualstack.{hint}.{}/{bucket}", self.domain()?),
        };
        Url::parse(&s)
            .map(Some)
            .map_err(|e| invalid(&self.display, e.0))
    }

    /// The URL of the object in `region`. With an endpoint override, path style is used:
    /// `<endpoint>/<bucket>/<key>`, or `<endpoint>/<name>-<account>/<key>` for access points.
    pub fn object_url(&self, endpoint: Option<&str>, region: &str) -> Result<Url, Error> {
        let key = self.key_path();
        let mut s = match (&self.bucket, endpoint) {
            (Bucket::Named(b), Some(e)) => format!("{}/{b}{key}", e.trim_end_matches('/')),
            (Bucket::AccessPoint { name, account, .. }, Some(e)) => {
                format!("{}/{name}-{account}{key}", e.trim_end_matches('/'))
            }
            (Bucket::Named(b), None) if virtual_host_ok(b) => {
                format!("https://{b}.s3.dualstack.{region}.{}{key}", self.domain()?)
            }
            (Bucket::Named(b), None) => {
                format!("https://s3.dualstack.{region}.{}/{b}{key}", self.domain()?)
            }
            (Bucket::AccessPoint { name, account, .. }, None) => format!(
                "https://{name}-{account}.s3-accesspoint.dualstack.{region}.{}{key}",
                self.domain()?
            ),
        };
        if let Some(q) = self.query() {
            s.push('?');
            s.push_str(&q);
        }
        Url::parse(&s).map_err(|e| invalid(&self.display, e.0))
    }
}

/// Whether a bucket can be a host name label under HTTPS (no dots, DNS-safe).
fn virtual_host_ok(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// SHA-256 of an empty payload, the `x-amz-content-sha256` of a GET.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The SigV4 signing key for a day, region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// Builds the canonical request. `headers` are lowercase names with trimmed values, sorted.
pub(crate) fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    let mut canonical = format!("{method}\n{uri}\n{query}\n");
    for (n, v) in headers {
        canonical.push_str(&format!("{n}:{v}\n"));
    }
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    canonical.push_str(&format!("\n{signed}\n{payload_hash}"));
    (canonical, signed)
}

/// Signs a GET of `url` at `amz_date` (`YYYYMMDDTHHMMSSZ`); returns the headers to send.
pub(crate) fn sign_get(
    url: &Url,
    creds: &AwsCredentials,
    region: &str,
    amz_date: &str,
) -> Vec<(String, Option<String>)> {
    let date = &amz_date[..8.min(amz_date.len())];
    let mut headers = vec![
        ("host".to_string(), url.host_header()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    headers.sort();
    let uri = if url.path.is_empty() { "/" } else { &url.path };
    let (canonical, signed) = canonical_request(
        "GET",
        uri,
        url.query.as_deref().unwrap_or(""),
        &headers,
        EMPTY_SHA256,
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&creds.secret_access_key, date, region, "s3");
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let mut out: Vec<(String, Option<String>)> = headers
        .into_iter()
        .filter(|(n, _)| n != "host")
        .map(|(n, v)| (n, Some(v)))
        .collect();
    out.push((
        "Authorization".to_string(),
        Some(format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        )),
    ));
    out
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub(crate) fn amz_date(unix: u64) -> String {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's published SigV4 examples: the signing-key derivation example from the general
    // reference, and the S3 "GET Object" example (examplebucket, test.txt, Range: bytes=0-9).
    #[test]
    fn signing_key_matches_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn s3_get_object_example_signature() {
        let headers: Vec<(String, String)> = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let (canonical, signed) = canonical_request("GET", "/test.txt", "", &headers, EMPTY_SHA256);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let sts = format!(
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        assert_eq!(
            hex(&hmac_sha256(&key, sts.as_bytes())),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sign_get_headers() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let creds = AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok".into()),
        };
        let h = sign_get(&url, &creds, "us-east-1", "20130524T000000Z");
        let auth = h
            .iter()
            .find(|(n, _)| n == "Authorization")
            .unwrap()
            .1
            .clone()
            .unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
        ));
        assert!(h
            .iter()
            .any(|(n, v)| n == "x-amz-security-token" && v.as_deref() == Some("tok")));
        assert!(!format!("{creds:?}").contains("wJalr"));
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400 + 3661), "20000229T010101Z");
    }

    fn obj(s: &str) -> S3Object {
        S3Object::parse(&Url::parse(s).unwrap()).unwrap()
    }

    #[test]
    fn parses_sources() {
        let o = obj("s3://my-bucket/dir/a%20b.ign?versionId=v1");
        assert_eq!(o.bucket, Bucket::Named("my-bucket".into()));
        assert_eq!(o.key, b"dir/a b.ign");
        assert_eq!(o.version_id.as_deref(), Some("v1"));
        assert_eq!(o.partition_default_region(), None);
        assert_eq!(
            o.object_url(None, "eu-west-1").unwrap().absolute_target(),
            "https://my-bucket.s3.dualstack.eu-west-1.amazonaws.com/dir/a%20b.ign?versionId=v1"
        );

        let o = obj("arn:aws-cn:s3:::dotted.bucket/k");
        assert_eq!(o.partition_default_region(), Some("cn-north-1"));
        assert_eq!(
            o.object_url(None, "cn-north-1").unwrap().absolute_target(),
            "https://s3.dualstack.cn-north-1.amazonaws.com.cn/dotted.bucket/k"
        );

        let o = obj("arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/object/x/y.ign");
        assert_eq!(
            o.bucket,
            Bucket::AccessPoint {
                name: "my-ap".into(),
                account: "123456789012".into(),
                region: "us-west-2".into()
            }
        );
        assert_eq!(
            o.object_url(None, "us-west-2").unwrap().absolute_target(),
            "https://my-ap-123456789012.s3-accesspoint.dualstack.us-west-2.amazonaws.com/x/y.ign"
        );
        assert_eq!(
            o.object_url(Some("http://127.0.0.1:9/"), "us-west-2")
                .unwrap()
                .absolute_target(),
            "http://127.0.0.1:9/my-ap-123456789012/x/y.ign"
        );
    }

    #[test]
    fn rejects_bad_sources() {
        for s in [
            "arn:aws:s3:::bucket",
            "arn:aws:ec2:::bucket/key",
            "arn:aws:s3",
            "arn:aws:s3:::/key",
            "arn:aws:s3:::accesspoint/x/object/k",
            "s3:///key",
        ] {
            assert!(S3Object::parse(&Url::parse(s).unwrap()).is_err(), "{s}");
        }
    }
}
