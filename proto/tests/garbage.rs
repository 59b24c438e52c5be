//! Untrusted bytes never panic the decoder: random input, truncations and
//! mutations of valid encodings, trailing bytes and hostile length fields.
//!
//! The random inputs come from fixed seeds, so a failure reproduces; the
//! failing input is printed in hex.

mod common;

use common::{client_messages, hex, server_messages};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Serialize, de::DeserializeOwned};
use sshmcp_proto::{
    ClientMessage, ProtoError, ServerMessage, decode, encode, read_message, write_frame,
};
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Decodes `bytes` as `T`, turning a panic into a test failure that shows the
/// input.
fn decode_no_panic<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    match catch_unwind(AssertUnwindSafe(|| decode::<T>(bytes))) {
        Ok(result) => result,
        Err(_) => panic!("decode panicked on {}", hex(bytes)),
    }
}

/// Random bytes biased towards what bincode reads specially: small variant
/// tags, `Option`/`bool` bytes and the varint width markers.
fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max_len);
    (0..len)
        .map(|_| match rng.random_range(0..4) {
            0 => rng.random_range(0..12),
            1 => rng.random_range(0xfb..=0xff),
            _ => rng.random(),
        })
        .collect()
}

fn random_input_never_panics<T: DeserializeOwned + Serialize + Debug>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ok = 0;
    for _ in 0..5_000 {
        let bytes = random_bytes(&mut rng, 96);
        let started = Instant::now();
        if let Ok(value) = decode_no_panic::<T>(&bytes) {
            ok += 1;
            // Anything that decodes survives a round trip. (Not necessarily
            // to the same bytes: bincode accepts non-minimal varints.)
            let again = encode(&value).unwrap();
            let back: T = decode(&again).unwrap();
            assert_eq!(hex(&encode(&back).unwrap()), hex(&again), "{value:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "slow on {}",
            hex(&bytes)
        );
    }
    // Short random inputs do sometimes make sense; make sure the test
    // exercises both outcomes rather than only the first byte's check.
    assert!(ok > 0, "no random input decoded; the generator is too weak");
}

#[test]
fn random_bytes_as_client_message_never_panic() {
    random_input_never_panics::<ClientMessage>(0x5eed_0001);
}

#[test]
fn random_bytes_as_server_message_never_panic() {
    random_input_never_panics::<ServerMessage>(0x5eed_0002);
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    // bincode is self-delimiting, so no strict prefix of a message is itself
    // a whole message.
    for msg in client_messages() {
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode_no_panic::<ClientMessage>(&bytes[..cut]).is_err(),
                "{msg:?} cut at {cut}"
            );
        }
    }
    for msg in server_messages() {
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode_no_panic::<ServerMessage>(&bytes[..cut]).is_err(),
                "{msg:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn random_mutations_of_valid_messages_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let clients: Vec<Vec<u8>> = client_messages()
        .iter()
        .map(|m| encode(m).unwrap())
        .collect();
    let servers: Vec<Vec<u8>> = server_messages()
        .iter()
        .map(|m| encode(m).unwrap())
        .collect();
    for round in 0..4_000 {
        let pool = if round % 2 == 0 { &clients } else { &servers };
        let mut bytes = pool[rng.random_range(0..pool.len())].clone();
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..3) {
                // Flip a byte.
                0 if !bytes.is_empty() => {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                // Cut somewhere.
                1 => bytes.truncate(rng.random_range(0..=bytes.len())),
                // Insert a byte.
                _ => {
                    let i = rng.random_range(0..=bytes.len());
                    bytes.insert(i, rng.random());
                }
            }
        }
        let _ = decode_no_panic::<ClientMessage>(&bytes);
        let _ = decode_no_panic::<ServerMessage>(&bytes);
    }
}

#[test]
fn trailing_bytes_are_a_decode_error() {
    for msg in client_messages() {
        for extra in [&[0u8][..], &[1, 2, 3], &encode(&msg).unwrap()] {
            let mut bytes = encode(&msg).unwrap();
            bytes.extend_from_slice(extra);
            match decode::<ClientMessage>(&bytes) {
                Err(ProtoError::Decode(text)) => assert!(text.contains("trailing"), "{text}"),
                other => panic!("{msg:?} + {extra:?}: {other:?}"),
            }
        }
    }
    for msg in server_messages() {
        let mut bytes = encode(&msg).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<ServerMessage>(&bytes),
            Err(ProtoError::Decode(_))
        ));
    }
}

#[test]
fn malformed_fields_are_decode_errors() {
    let cases: &[(&str, &[u8])] = &[
        ("empty input", &[]),
        ("unknown request variant", &[0x01, 0x09, 0x00]),
        (
            "huge request variant",
            &[0x01, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x80],
        ),
        // Disconnect { session_id: [0xff] }: not UTF-8.
        ("invalid UTF-8", &[0x01, 0x01, 0x01, 0xff, 0x00]),
        // Execute with an Option tag of 2.
        (
            "bad option tag",
            &[0x01, 0x03, 0x01, 0x73, 0x01, 0x63, 0x02],
        ),
        // ListSessions as protocol version 1 sent it: no progress flag.
        ("missing progress flag", &[0x01, 0x02]),
        ("bad progress flag", &[0x01, 0x02, 0x02]),
        // Cancel with its id missing.
        ("cancel without an id", &[0x01, 0x08]),
        // A varint marker with its bytes missing.
        ("short varint", &[0xfd, 0x01]),
        // Reserved varint marker 0xff.
        ("reserved varint marker", &[0xff, 0x02]),
    ];
    for (what, bytes) in cases {
        match decode::<ClientMessage>(bytes) {
            Err(ProtoError::Decode(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // ListSessions with a good progress flag decodes, so it was the flag
    // that failed above.
    assert!(decode::<ClientMessage>(&[0x01, 0x02, 0x01]).is_ok());

    // An ExecuteResult of two empty streams; `bool_at` is where a bool byte
    // is set to 2.
    let execute_result = |bool_at: Option<usize>| {
        let mut v = vec![
            0x01, 0x03, // id 1, Executed
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // stdout
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // stderr
            0x00, 0x00, 0x00, // exit_status, signal, timed_out
            0x00, // deadline
            0x00, // reconnected
        ];
        if let Some(i) = bool_at {
            v[i] = 0x02;
        }
        v
    };
    // The same with good bools decodes, so it is each bool that fails.
    assert!(decode::<ServerMessage>(&execute_result(None)).is_ok());
    // stdout.spill_truncated, stderr.spill_truncated, timed_out, reconnected.
    for i in [7, 13, 16, 18] {
        assert!(
            matches!(
                decode::<ServerMessage>(&execute_result(Some(i))),
                Err(ProtoError::Decode(_))
            ),
            "bool at {i}"
        );
    }
    // ExecuteResult as protocol version 2 laid it out (no reconnected
    // flag): not a version 3 result.
    let v2 = &execute_result(None)[..18];
    assert!(matches!(
        decode::<ServerMessage>(v2),
        Err(ProtoError::Decode(_))
    ));
    // ExecuteResult as protocol version 1 laid it out (bare byte strings and
    // two truncation flags): not a result of this version.
    let v1 = [0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    assert!(matches!(
        decode::<ServerMessage>(&v1),
        Err(ProtoError::Decode(_))
    ));

    // A ConnectRequest with every optional field `None`; `tag_at` is where
    // an Option tag is set to 2.
    let connect_request = |tag_at: Option<usize>| {
        let mut v = vec![
            0x01, 0x00, // id 1, Connect
            0x01, b'h', // hostname "h"
            0x00, 0x00, // username, port
            0x00, 0x00, 0x00, // password, private_key, passphrase
            0x00, 0x00, // jump, agent_socket
            0x00, 0x00, // secret_ref, approved_host_keys (empty)
            0x00, // progress
        ];
        if let Some(i) = tag_at {
            v[i] = 0x02;
        }
        v
    };
    assert!(decode::<ClientMessage>(&connect_request(None)).is_ok());
    for i in 4..=11 {
        assert!(
            matches!(
                decode::<ClientMessage>(&connect_request(Some(i))),
                Err(ProtoError::Decode(_))
            ),
            "option tag at {i}"
        );
    }
    // ConnectRequest as protocol version 2 laid it out (a bare username and
    // port, no passphrase, jump or agent socket): not a version 3 request.
    // id 1 | Connect | "h" | "u" | port 22 | password None | private_key
    // None | progress
    let v2 = [0x01, 0x00, 0x01, b'h', 0x01, b'u', 0x16, 0x00, 0x00, 0x00];
    assert!(matches!(
        decode::<ClientMessage>(&v2),
        Err(ProtoError::Decode(_))
    ));
}

/// A `Disconnect` whose session id claims `len` bytes and holds 3.
fn string_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x01, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(b"abc");
    v
}

/// An `Execute` whose stdin claims `len` bytes and holds 3.
fn stdin_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x03, 0x01, b's', 0x01, b'c', 0x01, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(b"abc");
    v
}

/// A `Sessions` response whose list claims `len` entries and holds none.
fn sessions_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x02, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// A `Transferred` response whose notes claim `len` strings and hold one.
fn notes_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x04, 0x01, b'/', 0x01, b'/', 0x00, 0x00, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&[0x01, b'n']);
    v
}

#[test]
fn hostile_lengths_fail_fast() {
    // 2^40 and friends: a decoder that believed them would try to allocate a
    // terabyte (and abort) or loop for a long time. The allocation side is
    // measured in `tests/alloc.rs`; here, speed and the error.
    for len in [1 << 40, u64::MAX, u64::from(u32::MAX), 1 << 27] {
        let started = Instant::now();
        assert!(matches!(
            decode::<ClientMessage>(&string_claiming(len)),
            Err(ProtoError::Decode(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>(&stdin_claiming(len)),
            Err(ProtoError::Decode(_))
        ));
        assert!(matches!(
            decode::<ServerMessage>(&sessions_claiming(len)),
            Err(ProtoError::Decode(_))
        ));
        assert!(matches!(
            decode::<ServerMessage>(&notes_claiming(len)),
            Err(ProtoError::Decode(_))
        ));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "length {len} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn random_frames_never_panic_the_reader() {
    // Whole random streams: the frame reader and decoder together. Every
    // read ends in a message, a clean end or an error; none of them hangs
    // (the input is a finite slice) or panics.
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for _ in 0..500 {
        let mut wire = Vec::new();
        for _ in 0..rng.random_range(0..6) {
            let payload = random_bytes(&mut rng, 40);
            if rng.random_bool(0.8) {
                write_frame(&mut wire, &payload).await.unwrap();
            } else {
                wire.extend_from_slice(&payload);
            }
        }
        let mut r = wire.as_slice();
        for _ in 0..16 {
            match read_message::<ClientMessage, _>(&mut r).await {
                Ok(None) | Err(ProtoError::Truncated | ProtoError::FrameTooLarge { .. }) => break,
                Ok(Some(_)) | Err(ProtoError::Decode(_)) => {}
                Err(other) => panic!("{other:?} on {}", hex(&wire)),
            }
        }
    }
}
