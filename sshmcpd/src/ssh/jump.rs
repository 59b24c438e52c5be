//! Jump-host lists as `ssh -J` and `ProxyJump` take them:
//! `[user@]host[:port]` or `ssh://[user@]host[:port]`, comma-separated,
//! first hop first. An IPv6 address with a port goes in brackets
//! (`[::1]:2222`).

/// One hop as written; `~/.ssh/config` fills in what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parses a jump list.
///
/// # Errors
/// An empty hop, an empty user or host, or a port that is not 1 to 65535;
/// the message quotes the hop and says what form is expected.
pub fn parse(list: &str) -> Result<Vec<HopSpec>, String> {
    list.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

fn parse_hop(hop: &str) -> Result<HopSpec, String> {
    let bad = |why: &str| {
        format!(
            "jump host {hop:?} {why}; write each hop as [user@]host[:port], several separated \
             by commas, first hop first"
        )
    };
    let rest = hop.strip_prefix("ssh://").unwrap_or(hop);
    if rest.is_empty() {
        return Err(bad("is empty"));
    }
    let (user, rest) = match rest.rsplit_once('@') {
        Some(("", _)) => return Err(bad("has an empty user name")),
        Some((user, rest)) => (Some(user.to_owned()), rest),
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("has a [ without its ]"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(bad("has text after ]")),
            },
        }
    } else if rest.matches(':').count() > 1 {
        // A bare IPv6 address: no port can follow it.
        (rest, None)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host name"));
    }
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("has a port that is not a number from 1 to 65535"))?,
        ),
    };
    Ok(HopSpec {
        user,
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(user: Option<&str>, host: &str, port: Option<u16>) -> HopSpec {
        HopSpec {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn hops_parse_like_ssh_j() {
        assert_eq!(
            parse("bastion, ops@gw.example.org:2222,ssh://me@[::1]:22,fe80::1").unwrap(),
            [
                hop(None, "bastion", None),
                hop(Some("ops"), "gw.example.org", Some(2222)),
                hop(Some("me"), "::1", Some(22)),
                hop(None, "fe80::1", None),
            ]
        );
        assert_eq!(parse("a@b@host").unwrap(), [hop(Some("a@b"), "host", None)]);
    }

    #[test]
    fn malformed_hops_say_what_is_wrong() {
        for (list, why) in [
            ("a,,b", "is empty"),
            ("@h", "empty user"),
            ("h:0", "port"),
            ("h:ssh", "port"),
            ("[::1", "without its ]"),
            ("u@:22", "no host"),
        ] {
            let e = parse(list).unwrap_err();
            assert!(e.contains(why), "{list}: {e}");
            assert!(e.contains("[user@]host[:port]"), "{e}");
        }
    }
}
