//! The target URL (`http://host:port/path?query`) and the request bytes sent to
//! it, built once for the whole run.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given, for the reports.
    pub url: String,
    /// `host[:port]` as given, for the `Host` header.
    pub authority: String,
    /// The host name or address, without brackets around an IPv6 address.
    pub host: String,
    /// The port; 80 when the URL names none.
    pub port: u16,
    /// The path and query, `/` when the URL has none.
    pub path: String,
}

impl Target {
    /// Parses `url`. Only `http://` is supported: the suite measures servers on
    /// this machine, where TLS would measure the cipher rather than the server.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url:?} is not an http:// URL (e.g. http://127.0.0.1:8080/)")
        })?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if path.contains('#')
            || path
                .chars()
                .any(|c| c.is_ascii_whitespace() || c.is_control())
        {
            return Err(format!(
                "the path of {url:?} has a space, control character or fragment"
            ));
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} has no host, or has user information"));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("{url:?} has a malformed host or port"))?;
        Ok(Target {
            url: url.to_owned(),
            authority: authority.to_owned(),
            host,
            port,
            path,
        })
    }

    /// Resolves the host to its first address (blocking: done once, before the run).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|err| format!("cannot resolve {}: {err}", self.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }

    /// The head of one request for `path` (the target's own, or one of
    /// `--mix`), with `Connection: close` if `close`: a `GET`, or with
    /// `body_bytes` a `POST` announcing that many bytes of body
    /// (`Content-Length`), which the connection sends after it. Built once
    /// and sent as it is for every request.
    pub fn request_bytes(&self, path: &str, close: bool, body_bytes: Option<u64>) -> Vec<u8> {
        let method = match body_bytes {
            Some(_) => "POST",
            None => "GET",
        };
        let mut request = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: loadgen/{}\r\n",
            path,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(length) = body_bytes {
            request.push_str(&format!("Content-Length: {length}\r\n"));
        }
        if close {
            request.push_str("Connection: close\r\n");
        }
        request.push_str("\r\n");
        request.into_bytes()
    }
}

/// Splits `host[:port]` or `[v6]:port`; the port defaults to 80.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok().filter(|&port| port != 0)?,
        None => 80,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host, port, path and query come apart; the path defaults to `/`.
    #[test]
    fn parses_urls() {
        let target = Target::parse("http://127.0.0.1:8080/a/b?work_us=5").expect("parse");
        assert_eq!(target.host, "127.0.0.1");
        assert_eq!(target.port, 8080);
        assert_eq!(target.path, "/a/b?work_us=5");
        assert_eq!(target.authority, "127.0.0.1:8080");

        let target = Target::parse("http://localhost").expect("parse");
        assert_eq!((target.port, target.path.as_str()), (80, "/"));

        let target = Target::parse("http://[::1]:9000?x=1").expect("parse");
        assert_eq!(target.host, "::1");
        assert_eq!(target.port, 9000);
        assert_eq!(target.path, "/?x=1");
    }

    /// Bad URLs are refused with a reason.
    #[test]
    fn refuses_bad_urls() {
        for url in [
            "https://127.0.0.1/",
            "127.0.0.1:8080",
            "http://",
            "http://host:0/",
            "http://host:99999/",
            "http://host:port/",
            "http://user@host/",
            "http://host/a b",
            "http://[::1/",
        ] {
            assert!(Target::parse(url).is_err(), "{url} was accepted");
        }
    }

    /// The request is a plain HTTP/1.1 GET with the Host header as given.
    #[test]
    fn builds_the_request() {
        let target = Target::parse("http://127.0.0.1:8080/x").expect("parse");
        let request =
            String::from_utf8(target.request_bytes(&target.path, true, None)).expect("ASCII");
        assert!(request.starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(request.ends_with("Connection: close\r\n\r\n"));
        assert!(!request.contains("Content-Length"));
        let keep_alive =
            String::from_utf8(target.request_bytes(&target.path, false, None)).expect("ASCII");
        assert!(!keep_alive.contains("Connection"));
        // `--body-bytes`: a POST announcing its body, whose bytes follow the head.
        let post = String::from_utf8(target.request_bytes(&target.path, false, Some(65536)))
            .expect("ASCII");
        assert!(post.starts_with("POST /x HTTP/1.1\r\n"), "{post}");
        assert!(post.ends_with("Content-Length: 65536\r\n\r\n"), "{post}");
    }
}
