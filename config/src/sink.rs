//! The snapshot sink's address: which store, and where in it.
//!
//! One parser serves the proxy's `snapshot_sink.url` and the CLI's `--from`, so a URL that
//! a sidecar pushes to is always one that `indextap recommend --from` can read.

use std::fmt;
use std::path::PathBuf;

/// The stores a snapshot sink can be, in the words an error shows.
pub const SINK_FORMS: &str =
    "postgres://… (a PostgreSQL URL), postgres (the postgres.admin_url), s3://bucket[/prefix] \
     or file:///absolute/dir";

/// A parsed sink address.
#[derive(Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// A table in the PostgreSQL database of this URL (it may hold a password).
    Postgres(String),
    /// The same, through `postgres.admin_url`; resolved with [`SinkTarget::resolve`].
    PostgresAdmin,
    /// S3-compatible object storage: one object per sidecar under `prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// A local directory (object storage's file-system backend): one file per sidecar.
    File(PathBuf),
}

impl SinkTarget {
    /// Parses a sink address; the error says what forms are accepted. It never quotes the
    /// address, which may hold a password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "postgres" {
            return Ok(SinkTarget::PostgresAdmin);
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("is not one of {SINK_FORMS}"));
        };
        match scheme {
            "postgres" | "postgresql" => Ok(SinkTarget::Postgres(text.to_owned())),
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let valid_bucket = !bucket.is_empty()
                    && bucket
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !valid_bucket {
                    return Err("does not name a bucket (s3://bucket/prefix)".to_owned());
                }
                Ok(SinkTarget::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            "file" => {
                if !rest.starts_with('/') {
                    return Err("is not an absolute file URL (file:///absolute/dir)".to_owned());
                }
                Ok(SinkTarget::File(PathBuf::from(rest)))
            }
            _ => Err(format!(
                "has an unknown scheme {scheme:?}; use {SINK_FORMS}"
            )),
        }
    }

    /// Whether `text` looks like a sink address rather than a file path or an admin URL:
    /// `postgres://`, `postgresql://`, `s3://` or `file://`.
    pub fn is_sink_url(text: &str) -> bool {
        ["postgres://", "postgresql://", "s3://", "file://"]
            .iter()
            .any(|scheme| text.trim_start().starts_with(scheme))
    }

    /// [`SinkTarget::PostgresAdmin`] becomes the admin URL; other targets are unchanged.
    pub fn resolve(self, admin_url: Option<&str>) -> Result<Self, String> {
        match self {
            SinkTarget::PostgresAdmin => admin_url
                .map(|url| SinkTarget::Postgres(url.to_owned()))
                .ok_or_else(|| "\"postgres\" needs postgres.admin_url".to_owned()),
            other => Ok(other),
        }
    }
}

/// Never shows a password: a PostgreSQL URL is shown without its user information.
impl fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// For logs: the store and its location, never the credentials.
impl fmt::Display for SinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkTarget::Postgres(url) => {
                let rest = url.split_once("://").map_or("", |(_, rest)| rest);
                let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
                let host_and_db = host_and_db.split_once('?').map_or(host_and_db, |(h, _)| h);
                write!(f, "postgres://{host_and_db}")
            }
            SinkTarget::PostgresAdmin => f.write_str("postgres (postgres.admin_url)"),
            SinkTarget::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            SinkTarget::File(dir) => write!(f, "file://{}", dir.display()),
        }
    }
}

/// Whether `id` can name a sidecar's entry: a row key and an object name alike.
pub fn check_sidecar_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a sidecar id: use 1 to 128 letters, digits, '-', '_' or '.', \
             not starting with '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(
            SinkTarget::parse("postgres").unwrap(),
            SinkTarget::PostgresAdmin
        );
        assert_eq!(
            SinkTarget::parse("postgresql://u:p@h:5432/db").unwrap(),
            SinkTarget::Postgres("postgresql://u:p@h:5432/db".into())
        );
        assert_eq!(
            SinkTarget::parse("s3://fleet/indextap/staging/").unwrap(),
            SinkTarget::S3 {
                bucket: "fleet".into(),
                prefix: "indextap/staging".into()
            }
        );
        assert_eq!(
            SinkTarget::parse("s3://fleet").unwrap(),
            SinkTarget::S3 {
                bucket: "fleet".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            SinkTarget::parse("file:///var/lib/sink").unwrap(),
            SinkTarget::File("/var/lib/sink".into())
        );
    }

    #[test]
    fn bad_forms_say_what_is_accepted() {
        for bad in [
            "",
            "mysql://u:pw@h/db",
            "s3://",
            "s3:///prefix",
            "file://relative",
            "x",
        ] {
            let err = SinkTarget::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
            assert!(!err.contains("pw@"), "{err}");
        }
        assert!(SinkTarget::parse("redis://h")
            .unwrap_err()
            .contains("file:///"));
    }

    #[test]
    fn display_hides_credentials() {
        let target =
            SinkTarget::parse("postgres://indextap:hunter2@db:5432/fleet?sslmode=disable").unwrap();
        assert_eq!(target.to_string(), "postgres://db:5432/fleet");
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[test]
    fn admin_form_resolves_to_the_admin_url() {
        let resolved = SinkTarget::PostgresAdmin
            .resolve(Some("postgres://a@h/db"))
            .unwrap();
        assert_eq!(resolved, SinkTarget::Postgres("postgres://a@h/db".into()));
        assert!(SinkTarget::PostgresAdmin.resolve(None).is_err());
    }

    #[test]
    fn sidecar_ids() {
        for good in ["app-7d9f-x2k", "a", "pod_1.staging"] {
            assert!(check_sidecar_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_sidecar_id(bad).is_err(), "{bad}");
        }
    }
}
