//! Where load may go: loopback only. This machine must never send load to another one, so the
//! host is checked once, here, before any socket is opened, and names are never resolved.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::bail;

/// The broker's address if `host` is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
pub(crate) fn loopback_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical(),
            Err(_) => bail!(
                "refusing --host {host:?}: ferrule-bench only sends load to loopback addresses \
                 (127.0.0.0/8, ::1 or localhost) and does not resolve host names"
            ),
        }
    };
    if !ip.is_loopback() {
        bail!(
            "refusing --host {host}: {ip} is not a loopback address; ferrule-bench only sends \
             load to 127.0.0.0/8 or ::1 so that it can never load another machine"
        );
    }
    if port == 0 {
        bail!("--port must not be 0");
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        for ok in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(loopback_addr(ok, 1883).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "0.0.0.0",
            "192.168.1.1",
            "example.com",
            "::",
            "8.8.8.8",
            "",
        ] {
            assert!(loopback_addr(bad, 1883).is_err(), "{bad}");
        }
        assert!(loopback_addr("127.0.0.1", 0).is_err());
    }
}
