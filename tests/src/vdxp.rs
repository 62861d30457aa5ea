//! A client that speaks the national axis's SDK (SDKVXP 2.0.x) wire protocol byte for byte, as
//! `shared/spec/vdxp-api.md` describes it: every option a `XroadVnpt-<key>` header with the
//! key's case kept, options sticky across calls (never cleared), the sign-header JSON in an
//! arbitrary key order (a Java HashMap's), the HMAC over its exact bytes, the lossy
//! `hash-file`, the trailing CRLF after the file, `Expect: 100-continue` on non-empty bodies
//! of every call but `sendEdoc`. Written on a raw TCP socket so that nothing is normalised.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The SDK's `hash-file`: each SHA-256 byte in hex without zero padding.
pub fn lossy_hash_file(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:x}")).collect()
}

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(aws_lc_rs::hmac::sign(&key, data).as_ref())
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server sent `100 Continue` before the final answer.
    pub continued: bool,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// An SDK service object: one per system, options kept for its whole life.
pub struct SdkClient {
    pub addr: SocketAddr,
    /// The endpoint's path, e.g. `/vxp/` (a trailing slash gives `//operation`, as the SDK).
    pub endpoint_path: String,
    pub system_id: String,
    pub secret: String,
    /// Fixed when the service object is built, reused for its whole life.
    pub timestamp: String,
    /// The options map, never cleared (key case kept).
    pub options: BTreeMap<String, String>,
    /// Rotates the sign-header's key order from call to call.
    calls: usize,
}

impl SdkClient {
    pub fn new(addr: SocketAddr, system_id: &str, secret: &str) -> SdkClient {
        SdkClient {
            addr,
            endpoint_path: "/vxp/".into(),
            system_id: system_id.into(),
            secret: secret.into(),
            timestamp: "03122026T063712+0455".into(),
            options: BTreeMap::new(),
            calls: 0,
        }
    }

    /// Sets options for the next call (they stay for every later call too).
    pub fn set(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        for (k, v) in pairs {
            self.options.insert((*k).to_string(), (*v).to_string());
        }
        self
    }

    /// The `sendEdoc` call: the file's bytes plus CRLF, `hash-file` the lossy way.
    pub fn send_edoc(&mut self, file: &[u8], from: &str, messagetype: &str) -> Answer {
        self.set(&[
            ("from", from),
            ("servicetype", "eDoc"),
            ("messagetype", messagetype),
            ("hash-file", &lossy_hash_file(file)),
        ]);
        let mut body = file.to_vec();
        body.extend_from_slice(b"\r\n");
        self.call(
            "POST",
            "sendEdoc",
            &["servicetype", "messagetype", "hash-file", "from"],
            "application/octet-stream",
            body,
        )
    }

    /// Any other operation: `{}` or an empty body as the SDK sends it.
    pub fn op(&mut self, method: &str, operation: &str, signed: &[&str], body: &[u8]) -> Answer {
        self.call(method, operation, signed, "application/json", body.to_vec())
    }

    /// Sends one request as the SDK does; `signed` are the option keys (beside systemid,
    /// timestamp and Content-Type) listed in the sign-header.
    pub fn call(
        &mut self,
        method: &str,
        operation: &str,
        signed: &[&str],
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let mut sent: Vec<(String, String)> = vec![
            ("XroadVnpt-systemid".into(), self.system_id.clone()),
            ("XroadVnpt-timestamp".into(), self.timestamp.clone()),
            ("XroadVnpt-Content-Type".into(), content_type.into()),
            ("XroadVnpt-version".into(), "3.0.201608".into()),
        ];
        for (k, v) in &self.options {
            sent.push((format!("XroadVnpt-{k}"), v.clone()));
        }
        let mut keys: Vec<String> =
            vec!["systemid".into(), "timestamp".into(), "Content-Type".into()];
        keys.extend(signed.iter().map(|s| s.to_string()));
        // The sign-header JSON in a HashMap's order: rotated from call to call.
        let mut entries: Vec<(String, String)> = keys
            .iter()
            .map(|k| {
                let name = format!("XroadVnpt-{k}");
                let value = sent
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (name, value)
            })
            .collect();
        self.calls += 1;
        let n = entries.len();
        entries.rotate_left(self.calls % n);
        let json = format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!(
                    "{}:{}",
                    serde_json::Value::String(k.clone()),
                    serde_json::Value::String(v.clone())
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        sent.push(("XroadVnpt-sign-header-key".into(), keys.join(";")));
        sent.push((
            "XroadVnpt-hash-header".into(),
            hmac_hex(&self.secret, json.as_bytes()),
        ));
        sent.push(("XroadVnpt-sign-header".into(), json));
        self.raw(method, operation, &sent, content_type, &body)
    }

    /// Writes the request on a fresh connection and reads the answer.
    pub fn raw(
        &self,
        method: &str,
        operation: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let mut s = TcpStream::connect(self.addr).expect("the legacy listener accepts");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let send_edoc = operation == "sendEdoc";
        // The SDK joins endpoint and operation with '/': a trailing slash gives `//operation`.
        let mut head = format!(
            "{method} {}/{operation} HTTP/1.1\r\nHost: {}\r\n",
            self.endpoint_path, self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let expect = !send_edoc && !body.is_empty();
        if send_edoc {
            head.push_str("User-Agent: Java/17.0.2\r\n");
        } else {
            head.push_str(
                "User-Agent: JAVASDKAgent/1.0.0 XRoad/VPCP\r\nAccept-Encoding: gzip,deflate\r\n",
            );
        }
        if !(method == "GET" && body.is_empty()) {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        if expect {
            head.push_str("Expect: 100-continue\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut continued = false;
        if expect {
            // Wait for 100 Continue (or a final answer) before the body, as HttpClient does.
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.starts_with("HTTP/1.1 100") {
                continued = true;
                let mut blank = String::new();
                reader.read_line(&mut blank).unwrap();
                s.write_all(body).unwrap();
                return read_answer(reader, None, continued);
            }
            return read_answer(reader, Some(line), continued);
        }
        s.write_all(body).unwrap();
        read_answer(reader, None, continued)
    }
}

fn read_answer(mut r: BufReader<TcpStream>, first: Option<String>, continued: bool) -> Answer {
    let status_line = match first {
        Some(l) => l,
        None => {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l
        }
    };
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            r.read_line(&mut crlf).unwrap();
        }
    } else if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body = vec![0; n];
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Answer {
        status,
        headers,
        body,
        continued,
    }
}
