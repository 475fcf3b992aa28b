//! `packet` (Equinix Metal): `GET https://metadata.packet.net/userdata` with `Accept: */*`.
//! Any failure, a 404 included, is an error; an empty body means no config. Offline: needs
//! the network.
//!
//! [`Provider::status`] reports each stage to the machine's timeline: `GET /metadata`, take
//! `phone_home_url`, drop a trailing `/phone-home`, append `/events`, and `POST` the JSON
//! `{"state":"running","message":"[<stage>] Ignition status: finished successfully"}`, or
//! `{"state":"failed","message":"[<stage>] Ignition error: <error>"}` (escaped like Go's
//! `encoding/json`, which Ignition uses). Failures to report are logged, never fatal.

use std::time::Duration;

use super::util::{self, NotFound};
use super::{Error, Provider};
use crate::config::marshal::write_string;
use crate::fetch::{Fetcher, Method};

pub struct Packet {
    base: String,
    lookup_timeout: Duration,
}

impl Packet {
    /// `base` is the metadata service's base URL; `lookup_timeout` bounds each status report.
    pub fn new(base: &str, lookup_timeout: Duration) -> Self {
        Packet {
            base: base.trim_end_matches('/').to_string(),
            lookup_timeout,
        }
    }

    /// Where the status of a stage goes.
    fn events_url(&self, fetcher: &Fetcher) -> Result<String, Error> {
        let data = util::fetch(
            fetcher,
            &util::request(format!("{}/metadata", self.base), &[]),
            NotFound::Error,
        )?
        .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Metadata {
            #[serde(default)]
            phone_home_url: String,
        }
        let md: Metadata = serde_json::from_slice(&data).map_err(|_| Error::Malformed {
            what: "the metadata is not valid JSON".into(),
        })?;
        if md.phone_home_url.is_empty() {
            return Err(Error::Malformed {
                what: "the metadata has no phone_home_url".into(),
            });
        }
        let base = md
            .phone_home_url
            .strip_suffix("/phone-home")
            .unwrap_or(&md.phone_home_url);
        Ok(format!("{base}/events"))
    }

    fn post_status(
        &self,
        stage: &str,
        error: Option<&str>,
        fetcher: &Fetcher,
    ) -> Result<(), Error> {
        let fetcher = util::bounded_fetcher(fetcher.options(), self.lookup_timeout)?;
        let url = self.events_url(&fetcher)?;
        let body = status_body(stage, error);
        let mut res = util::request(url, &[("Content-Type", "application/json")]);
        res.method = Method::Post;
        res.body = body.into_bytes();
        util::fetch(&fetcher, &res, NotFound::Error)?;
        Ok(())
    }
}

/// The JSON body of a status report, byte for byte what Ignition sends.
pub fn status_body(stage: &str, error: Option<&str>) -> String {
    let (state, message) = match error {
        Some(e) => ("failed", format!("[{stage}] Ignition error: {e}")),
        None => (
            "running",
            format!("[{stage}] Ignition status: finished successfully"),
        ),
    };
    // Field order as in Ignition's struct: state, then message; strings escaped as Go does.
    let mut out = String::from("{\"state\":");
    write_string(&mut out, state);
    out.push_str(",\"message\":");
    write_string(&mut out, &message);
    out.push('}');
    out
}

impl Provider for Packet {
    fn id(&self) -> &'static str {
        "packet"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        util::fetch_user_data(
            fetcher,
            format!("{}/userdata", self.base),
            &[("Accept", "*/*")],
            NotFound::Error,
        )
    }

    fn status(&self, stage: &str, error: Option<&str>, fetcher: &Fetcher) {
        if fetcher.options().offline {
            log::info!("packet: offline; not reporting the {stage} stage");
            return;
        }
        log::info!("packet: reporting the {stage} stage to the timeline");
        if let Err(e) = self.post_status(stage, error, fetcher) {
            log::warn!("packet: reporting the {stage} stage: {}", util::chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_like_go() {
        assert_eq!(
            status_body("fetch", None),
            r#"{"state":"running","message":"[fetch] Ignition status: finished successfully"}"#
        );
        assert_eq!(
            status_body("disks", Some("a <b> & \"c\"")),
            r#"{"state":"failed","message":"[disks] Ignition error: a \u003cb\u003e \u0026 \"c\""}"#
        );
    }
}
