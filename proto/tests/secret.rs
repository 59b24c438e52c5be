//! `Secret` keeps passwords and key passphrases out of logs: its `Debug`,
//! and the `Debug` of everything that holds one, never shows the value.

use sshmcp_proto::{ClientMessage, ConnectRequest, Request, Secret, decode, encode};

const PASSWORD: &str = "hunter2";
const PASSPHRASE: &str = "open sesame, key 7";

/// Both secrets set, next to fields that do show.
fn connect() -> ConnectRequest {
    ConnectRequest {
        hostname: "db.example.internal".into(),
        username: Some("admin".into()),
        port: Some(22),
        password: Some(Secret::new(PASSWORD.into())),
        private_key: Some("/home/admin/.ssh/id_ed25519".into()),
        passphrase: Some(Secret::new(PASSPHRASE.into())),
        jump: Some("admin@bastion:2222,10.0.0.5".into()),
        agent_socket: Some("/run/user/1000/ssh-agent.socket".into()),
        secret_ref: None,
        approved_host_keys: Vec::new(),
    }
}

/// An encrypted key and no password: the passphrase is the only secret.
fn key_only_connect() -> ConnectRequest {
    ConnectRequest {
        password: None,
        ..connect()
    }
}

fn message(request: ConnectRequest) -> ClientMessage {
    ClientMessage {
        id: 12,
        request: Request::Connect(request),
        progress: false,
    }
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(PASSWORD), "password shown: {text}");
    assert!(!text.contains(PASSPHRASE), "passphrase shown: {text}");
}

#[test]
fn secret_debug_is_redacted() {
    for value in [PASSWORD, PASSPHRASE] {
        let s = Secret::new(value.into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert!(!format!("{s:#?}").contains(value));
    }
}

#[test]
fn connect_request_debug_hides_the_password_and_passphrase() {
    let req = connect();
    for text in [format!("{req:?}"), format!("{req:#?}")] {
        assert_no_secret(&text);
        // The rest is still there for the logs.
        assert!(text.contains("db.example.internal"), "{text}");
        assert!(text.contains("admin@bastion:2222,10.0.0.5"), "{text}");
        assert!(text.contains("/run/user/1000/ssh-agent.socket"), "{text}");
        // One redaction per secret.
        assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    }
}

#[test]
fn connect_request_debug_hides_a_lone_passphrase() {
    let req = key_only_connect();
    for text in [format!("{req:?}"), format!("{req:#?}")] {
        assert_no_secret(&text);
        assert!(text.contains("id_ed25519"), "{text}");
        assert_eq!(text.matches("[redacted]").count(), 1, "{text}");
    }
}

#[test]
fn whole_message_debug_hides_the_secrets() {
    for msg in [message(connect()), message(key_only_connect())] {
        assert_no_secret(&format!("{msg:?}"));
        assert_no_secret(&format!("{msg:#?}"));
        assert_no_secret(&format!("{:?}", msg.request));
        // Also after a trip over the wire, and in a clone.
        let back: ClientMessage = decode(&encode(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_no_secret(&format!("{back:?}"));
        assert_no_secret(&format!("{:?}", back.clone()));
    }
}

#[test]
fn the_values_are_still_available_to_who_needs_them() {
    let req = connect();
    assert_eq!(req.password.as_ref().map(Secret::expose), Some(PASSWORD));
    assert_eq!(
        req.passphrase.as_ref().map(Secret::expose),
        Some(PASSPHRASE)
    );
    let back: ClientMessage = decode(&encode(&message(req)).unwrap()).unwrap();
    let Request::Connect(back) = back.request else {
        panic!("not a connect")
    };
    assert_eq!(back.password.unwrap().expose(), PASSWORD);
    assert_eq!(back.passphrase.unwrap().expose(), PASSPHRASE);
}
