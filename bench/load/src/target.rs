//! The server under load: a local `http://` address, checked once before any traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::LoadError;

/// A validated local HTTP endpoint.
///
/// The load generator only ever talks to the loopback interface: it is a benchmark tool, and
/// pointing it at someone else's server by mistake would be a denial-of-service attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    addr: SocketAddr,
    authority: String,
    path_and_query: String,
}

impl Target {
    /// Parses `url` and refuses anything but `http` on `127.0.0.1`, `localhost` or `[::1]`.
    ///
    /// `localhost` is pinned to `127.0.0.1` rather than resolved, so that a run never
    /// depends on resolver order (IPv6 first on some systems) or on `/etc/hosts`.
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let url = Url::parse(url).map_err(LoadError::InvalidUrl)?;
        if url.scheme() != "http" {
            return Err(LoadError::UnsupportedScheme(url.scheme().to_owned()));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) if ip == Ipv4Addr::LOCALHOST => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) if ip == Ipv6Addr::LOCALHOST => IpAddr::V6(ip),
            Some(Host::Domain("localhost")) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            other => {
                return Err(LoadError::NotLocal(
                    other.map(|host| host.to_string()).unwrap_or_default(),
                ));
            }
        };
        let port = url.port_or_known_default().ok_or(LoadError::MissingPort)?;
        let host = url.host_str().unwrap_or_default();
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            authority: format!("{host}:{port}"),
            path_and_query,
        })
    }

    /// The socket address connections are opened to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, sent as the `Host` header as HTTP/1.1 requires.
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path (and query) of the URL, used by the built-in request sources.
    #[must_use]
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}
