//! The hello handshake: round trips, bad magic, truncation, the software
//! string's 255-byte limit and unknown status bytes.

mod common;

use common::unhex;
use sshmcp_proto::{HELLO_MAGIC, Hello, HelloReply, HelloStatus, PROTOCOL_VERSION, ProtoError};

fn sample_hello() -> Hello {
    Hello::current("sshmcp-shim 0.1.0")
}

fn sample_replies() -> [HelloReply; 3] {
    [
        HelloReply {
            proto_version: PROTOCOL_VERSION,
            status: HelloStatus::Accepted,
            software: "sshmcpd 0.1.0".into(),
        },
        HelloReply {
            proto_version: PROTOCOL_VERSION + 1,
            status: HelloStatus::VersionMismatch,
            software: "sshmcpd 9.9.9 (ünïcødé build)".into(),
        },
        HelloReply {
            proto_version: u32::MAX,
            status: HelloStatus::Accepted,
            software: String::new(),
        },
    ]
}

#[test]
fn current_uses_the_protocol_version() {
    let h = Hello::current("me 1.0");
    assert_eq!(h.proto_version, PROTOCOL_VERSION);
    assert_eq!(h.software, "me 1.0");
}

#[tokio::test]
async fn hello_roundtrips_from_bytes() {
    for hello in [
        sample_hello(),
        Hello {
            proto_version: 0,
            software: String::new(),
        },
        Hello {
            proto_version: u32::MAX,
            software: "ñ".repeat(127),
        },
    ] {
        let bytes = hello.to_bytes();
        let mut r = bytes.as_slice();
        assert_eq!(Hello::read(&mut r).await.unwrap(), hello);
        assert!(r.is_empty(), "read exactly the hello");
    }
}

#[tokio::test]
async fn hello_reply_roundtrips_from_bytes() {
    for reply in sample_replies() {
        let bytes = reply.to_bytes();
        let mut r = bytes.as_slice();
        assert_eq!(HelloReply::read(&mut r).await.unwrap(), reply);
        assert!(r.is_empty(), "read exactly the reply");
    }
}

#[tokio::test]
async fn handshake_roundtrips_over_a_duplex() {
    let (mut client, mut daemon) = tokio::io::duplex(8);
    let hello = sample_hello();
    let [reply, ..] = sample_replies();
    let (h, r) = (hello.clone(), reply.clone());
    let daemon_side = async move {
        assert_eq!(Hello::read(&mut daemon).await.unwrap(), h);
        r.write(&mut daemon).await.unwrap();
    };
    let client_side = async move {
        hello.write(&mut client).await.unwrap();
        HelloReply::read(&mut client).await.unwrap()
    };
    let ((), got) = tokio::join!(daemon_side, client_side);
    assert_eq!(got, reply);
}

#[tokio::test]
async fn bad_magic_is_refused() {
    // Every single-byte corruption of the magic, and some plausible strangers:
    // an HTTP request, an SSH banner, a bincode frame.
    let good = sample_hello().to_bytes();
    let mut inputs: Vec<Vec<u8>> = (0..HELLO_MAGIC.len())
        .map(|i| {
            let mut b = good.clone();
            b[i] ^= 0x20;
            b
        })
        .collect();
    inputs.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    inputs.push(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec());
    inputs.push(unhex("02000000 0102 00000000000000"));
    for input in inputs {
        let mut r = input.as_slice();
        assert!(
            matches!(Hello::read(&mut r).await, Err(ProtoError::BadMagic)),
            "{input:?}"
        );
        let mut r = input.as_slice();
        assert!(
            matches!(HelloReply::read(&mut r).await, Err(ProtoError::BadMagic)),
            "{input:?}"
        );
    }
}

#[tokio::test]
async fn every_truncation_is_truncated() {
    let hello = sample_hello().to_bytes();
    for cut in 0..hello.len() {
        let mut r = &hello[..cut];
        let got = Hello::read(&mut r).await;
        assert!(
            matches!(got, Err(ProtoError::Truncated)),
            "cut {cut}: {got:?}"
        );
    }
    for reply in sample_replies() {
        let bytes = reply.to_bytes();
        for cut in 0..bytes.len() {
            let mut r = &bytes[..cut];
            let got = HelloReply::read(&mut r).await;
            assert!(
                matches!(got, Err(ProtoError::Truncated)),
                "cut {cut}: {got:?}"
            );
        }
    }
}

#[tokio::test]
async fn long_ascii_software_is_cut_to_255_bytes() {
    for (len, kept) in [(254, 254), (255, 255), (256, 255), (10_000, 255)] {
        let hello = Hello {
            proto_version: 1,
            software: "a".repeat(len),
        };
        let bytes = hello.to_bytes();
        assert_eq!(bytes[12] as usize, kept);
        assert_eq!(bytes.len(), 13 + kept);
        let got = Hello::read(&mut bytes.as_slice()).await.unwrap();
        assert_eq!(got.software, "a".repeat(kept));
    }
}

#[tokio::test]
async fn long_software_is_cut_on_a_char_boundary() {
    // (text, bytes kept): byte 255 falls inside a 2-, 3- and 4-byte char.
    let cases = [
        ("é".repeat(200), 254),                    // 2-byte chars: 127 whole ones
        (format!("a{}", "é".repeat(200)), 255),    // shifted: 1 + 127 * 2
        ("€".repeat(100), 255),                    // 3-byte chars: 85 whole ones
        (format!("a{}", "€".repeat(100)), 253),    // 1 + 84 * 3
        ("🦀".repeat(100), 252),                   // 4-byte chars: 63 whole ones
        (format!("abc{}", "🦀".repeat(100)), 255), // 3 + 63 * 4
    ];
    for (text, kept) in cases {
        let hello = Hello {
            proto_version: 1,
            software: text.clone(),
        };
        let bytes = hello.to_bytes();
        assert_eq!(bytes[12] as usize, kept, "{text}");
        let got = Hello::read(&mut bytes.as_slice()).await.unwrap();
        assert_eq!(got.software, text[..kept], "cut on a char boundary");

        // Same rule for the reply.
        let reply = HelloReply {
            proto_version: 1,
            status: HelloStatus::Accepted,
            software: text.clone(),
        };
        let bytes = reply.to_bytes();
        assert_eq!(bytes[13] as usize, kept, "{text}");
        let got = HelloReply::read(&mut bytes.as_slice()).await.unwrap();
        assert_eq!(got.software, text[..kept]);
    }
}

#[tokio::test]
async fn unknown_status_bytes_read_as_version_mismatch() {
    // A future daemon may add refusal reasons; all of them mean "not
    // accepted" to this client.
    for status in [1u8, 2, 7, 0x80, 0xff] {
        let mut bytes = HELLO_MAGIC.to_vec();
        bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        bytes.push(status);
        bytes.extend_from_slice(b"\x01d");
        let got = HelloReply::read(&mut bytes.as_slice()).await.unwrap();
        assert_eq!(got.status, HelloStatus::VersionMismatch, "status {status}");
        assert_eq!(got.proto_version, PROTOCOL_VERSION);
        assert_eq!(got.software, "d");
    }
}

#[tokio::test]
async fn invalid_utf8_software_is_read_lossily() {
    // The software string is for logs and messages only; a bad one must not
    // stop two versions from learning each other's protocol version.
    let mut bytes = HELLO_MAGIC.to_vec();
    bytes.extend_from_slice(&7u32.to_le_bytes());
    bytes.extend_from_slice(b"\x03a\xffb");
    let got = Hello::read(&mut bytes.as_slice()).await.unwrap();
    assert_eq!(got.proto_version, 7);
    assert_eq!(got.software, "a\u{fffd}b");
}

#[tokio::test]
async fn a_newer_peer_is_still_readable() {
    // The point of the frozen layout: a hello from any future version parses,
    // so the daemon can say which versions disagree.
    let future = Hello {
        proto_version: PROTOCOL_VERSION + 41,
        software: "sshmcp-shim 7.0.0".into(),
    };
    let got = Hello::read(&mut future.to_bytes().as_slice())
        .await
        .unwrap();
    assert_eq!(got, future);
}

#[test]
fn daemon_facts_round_trip_through_the_software_string() {
    use sshmcp_proto::DaemonFacts;
    let facts = DaemonFacts {
        sessions: Some(3),
        socket_activated: true,
    };
    let software = facts.describe("sshmcpd 1.2.3");
    assert_eq!(software, "sshmcpd 1.2.3; sessions=3; socket-activated");
    assert_eq!(DaemonFacts::parse(&software), facts);
    // Old daemons say nothing; unknown facts are ignored.
    assert_eq!(DaemonFacts::parse("sshmcpd 0.1.0"), DaemonFacts::default());
    assert_eq!(
        DaemonFacts::parse("sshmcpd 9; colour=blue; sessions=0"),
        DaemonFacts {
            sessions: Some(0),
            socket_activated: false
        }
    );
}
