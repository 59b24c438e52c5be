//! `Secret` keeps passwords out of logs: its `Debug`, and the `Debug` of
//! everything that holds one, never shows the value.

use sshmcp_proto::{ClientMessage, ConnectRequest, Request, Secret, decode, encode};

const PASSWORD: &str = "hunter2";

fn connect() -> ConnectRequest {
    ConnectRequest {
        hostname: "db.example.internal".into(),
        username: "admin".into(),
        port: 22,
        password: Some(Secret::new(PASSWORD.into())),
        private_key: None,
    }
}

#[test]
fn secret_debug_is_redacted() {
    let s = Secret::new(PASSWORD.into());
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    assert!(!format!("{s:#?}").contains(PASSWORD));
}

#[test]
fn connect_request_debug_hides_the_password() {
    let req = connect();
    for text in [format!("{req:?}"), format!("{req:#?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
        // The rest is still there for the logs.
        assert!(text.contains("db.example.internal"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn whole_message_debug_hides_the_password() {
    let msg = ClientMessage {
        id: 12,
        request: Request::Connect(connect()),
        progress: false,
    };
    assert!(!format!("{msg:?}").contains(PASSWORD));
    assert!(!format!("{:?}", msg.request).contains(PASSWORD));
    // Also after a trip over the wire, and in a clone.
    let back: ClientMessage = decode(&encode(&msg).unwrap()).unwrap();
    assert!(!format!("{back:?}").contains(PASSWORD));
    assert!(!format!("{:?}", back.clone()).contains(PASSWORD));
}

#[test]
fn the_value_is_still_available_to_who_needs_it() {
    let req = connect();
    assert_eq!(req.password.as_ref().map(Secret::expose), Some(PASSWORD));
    let back: ClientMessage = decode(
        &encode(&ClientMessage {
            id: 1,
            request: Request::Connect(req),
            progress: false,
        })
        .unwrap(),
    )
    .unwrap();
    let Request::Connect(back) = back.request else {
        panic!("not a connect")
    };
    assert_eq!(back.password.unwrap().expose(), PASSWORD);
}
