//! The HTTP client: TLS for `https` endpoints, plain TCP for `http` ones (TLS is set up lazily,
//! so this pins that the lazy path still speaks TLS where it must).

use crate::support::{Sandbox, stderr};
use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A loopback listener that keeps the first bytes of every connection and then hangs up.
fn first_bytes_listener() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 5];
            if stream.read_exact(&mut buf).is_ok() {
                keep.lock().unwrap().push(buf.to_vec());
            }
        }
    });
    (port, seen)
}

/// Runs `plan` against `scheme://127.0.0.1:PORT` and returns what the endpoint received.
fn first_bytes_sent(scheme: &str) -> Vec<Vec<u8>> {
    let (port, seen) = first_bytes_listener();
    let sb = Sandbox::via(&format!("{scheme}://127.0.0.1:{port}"));
    let out = sb
        .cmd()
        .args(["plan", "--owner", &sb.owner.name, "--user", &sb.user.name])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the endpoint got no request");
    seen
}

#[test]
fn an_https_endpoint_is_spoken_to_over_tls() {
    for first in first_bytes_sent("https") {
        // A TLS handshake record: content type 22, protocol version 3.x.
        assert_eq!(&first[..2], &[0x16, 0x03], "{first:?}");
    }
}

#[test]
fn an_http_endpoint_is_spoken_to_in_plain_http() {
    for first in first_bytes_sent("http") {
        assert_eq!(&first, b"POST ", "{}", String::from_utf8_lossy(&first));
    }
}
