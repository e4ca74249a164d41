//! Sockets: which address a `connect`, `bind` or `sendto` names. Data that
//! comes through a socket is not a file casher can record, so a successful
//! connection makes the run uncacheable (unless the user allowed network
//! access); netlink (the kernel's own view) is not a connection.

use crate::memory::read_bytes;

/// What a socket call reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An `AF_UNIX` socket: a path, or `@name` for an abstract one.
    Unix(String),
    /// `AF_INET`/`AF_INET6`, loopback included.
    Network(String),
}

impl Peer {
    pub fn describe(&self, verb: &str) -> String {
        match self {
            Peer::Unix(path) => format!("the command {verb} the Unix socket {path}"),
            Peer::Network(addr) => format!(
                "the command {verb} the network ({addr}); pass --allow-network to cache it anyway"
            ),
        }
    }
}

/// Decodes the `sockaddr` at `addr` (`len` bytes) in thread `tid`.
pub fn peer(tid: i32, addr: u64, len: u64) -> Option<Peer> {
    if addr == 0 || len < 2 {
        return None;
    }
    let len = usize::try_from(len.min(128)).ok()?;
    let raw = read_bytes(tid, addr, len)?;
    let family = i32::from(u16::from_ne_bytes([raw[0], raw[1]]));
    match family {
        libc::AF_UNIX => {
            let path = &raw[2..];
            Some(Peer::Unix(match path.first() {
                Some(0) => format!("@{}", String::from_utf8_lossy(&path[1..])),
                _ => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    String::from_utf8_lossy(&path[..end]).into_owned()
                }
            }))
        }
        libc::AF_INET if raw.len() >= 8 => {
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            Some(Peer::Network(format!(
                "{}.{}.{}.{}:{port}",
                raw[4], raw[5], raw[6], raw[7]
            )))
        }
        libc::AF_INET6 if raw.len() >= 24 => {
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&raw[8..24]);
            Some(Peer::Network(format!(
                "[{}]:{port}",
                std::net::Ipv6Addr::from(octets)
            )))
        }
        _ => None,
    }
}
