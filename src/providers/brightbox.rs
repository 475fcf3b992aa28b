//! `brightbox`: OpenStack's sources and rules exactly (see [`super::openstack`]).

use super::openstack::Sources;
use super::{Error, Provider};
use crate::fetch::Fetcher;

pub struct Brightbox {
    sources: Sources,
}

impl Brightbox {
    pub fn new(sources: Sources) -> Self {
        Brightbox { sources }
    }
}

impl Provider for Brightbox {
    fn id(&self) -> &'static str {
        "brightbox"
    }

    fn fetch_config(&self, fetcher: &Fetcher) -> Result<Option<Vec<u8>>, Error> {
        self.sources.fetch(fetcher)
    }
}
