//! `digitalocean` (DigitalOcean): the instance user data, `GET <base>/metadata/v1/user-data` from
//! the link-local metadata service. A 404 is an error, as in Ignition; an empty body means no
//! config.

use super::util::{NotFound, UserData};

/// The provider; `base` is the metadata service's base URL.
pub fn provider(base: &str) -> UserData {
    UserData {
        id: "digitalocean",
        url: format!("{}/metadata/v1/user-data", base.trim_end_matches('/')),
        not_found: NotFound::Error,
    }
}
