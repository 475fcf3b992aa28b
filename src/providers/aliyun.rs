//! `aliyun` (Alibaba Cloud): the instance user data, `GET <base>/latest/user-data` from
//! `http://100.100.100.200` (its own address, [`super::Endpoints::aliyun`]). A 404 or an empty
//! body means no config.

use super::util::{NotFound, UserData};

/// The provider; `base` is the metadata service's base URL.
pub fn provider(base: &str) -> UserData {
    UserData {
        id: "aliyun",
        url: format!("{}/latest/user-data", base.trim_end_matches('/')),
        not_found: NotFound::Empty,
    }
}
