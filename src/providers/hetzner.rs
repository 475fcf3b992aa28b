//! `hetzner` (Hetzner Cloud): the instance user data, `GET <base>/hetzner/v1/userdata` from the
//! link-local metadata service. A 404 or an empty body means no config.

use super::util::{NotFound, UserData};

/// The provider; `base` is the metadata service's base URL.
pub fn provider(base: &str) -> UserData {
    UserData {
        id: "hetzner",
        url: format!("{}/hetzner/v1/userdata", base.trim_end_matches('/')),
        not_found: NotFound::Empty,
    }
}
