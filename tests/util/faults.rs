//! A fault-injecting HTTP proxy for the S3 tests: it sits between flowpack and the moto
//! server on 127.0.0.1 and, at a configurable rate, answers a request with one of the faults
//! real object stores produce — 500, 503 SlowDown, a connection reset (before or after the
//! server applied the request), a stall, a truncated body, a flipped byte in a body.
//!
//! One request per connection (it answers `Connection: close`); requests must carry a
//! Content-Length (object_store's do). Faults are drawn from a seeded generator, so a
//! failing run can be repeated. Counters say what was injected.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault the proxy can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 Internal Error, request not forwarded.
    Error500,
    /// 503 SlowDown, request not forwarded.
    SlowDown,
    /// The connection is reset before the request reaches the server.
    ResetBefore,
    /// The request is applied by the server, then the connection is reset.
    ResetAfter,
    /// The answer is held back for a while, then sent.
    Stall,
    /// The answer's body is cut short, then the connection is closed.
    Truncate,
    /// One byte of a non-empty answer body is flipped (headers intact).
    Flip,
}

/// What the proxy did.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub injected: AtomicU64,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub port: u16,
    pub counters: Arc<Counters>,
    config: Arc<Mutex<Config>>,
    stop: Arc<AtomicBool>,
}

struct Config {
    rate: f64,
    faults: Vec<Fault>,
    stall: Duration,
    rng: u64,
    /// When set, only requests whose request line contains this get faults.
    only: Option<String>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (host:port) injecting one of `faults` into `rate` of
    /// requests (0.0..=1.0).
    pub fn start(upstream: (String, u16), rate: f64, faults: &[Fault], seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let config = Arc::new(Mutex::new(Config {
            rate,
            faults: faults.to_vec(),
            stall: Duration::from_millis(1500),
            rng: seed | 1,
            only: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, cfg, st) = (counters.clone(), config.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (c, cfg, up) = (c.clone(), cfg.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &c, &cfg);
                });
            }
        });
        Proxy {
            port,
            counters,
            config,
            stop,
        }
    }

    /// Changes the share of requests that get a fault.
    pub fn set_rate(&self, rate: f64) {
        self.config.lock().unwrap().rate = rate;
    }

    /// Injects faults only into requests whose request line contains `needle` (e.g.
    /// `partNumber=`, the parts of multipart uploads), or into any with None.
    pub fn set_only(&self, needle: Option<&str>) {
        self.config.lock().unwrap().only = needle.map(String::from);
    }

    pub fn injected(&self) -> u64 {
        self.counters.injected.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// xorshift64*: small, seeded, good enough to spread faults.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn draw(cfg: &Mutex<Config>, head: &[u8]) -> (Option<Fault>, Duration, u64) {
    let mut c = cfg.lock().unwrap();
    let roll = (next(&mut c.rng) % 1_000_000) as f64 / 1_000_000.0;
    let pick = next(&mut c.rng);
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let eligible = c
        .only
        .as_ref()
        .is_none_or(|n| line.windows(n.len()).any(|w| w == n.as_bytes()));
    let fault = (eligible && roll < c.rate && !c.faults.is_empty())
        .then(|| c.faults[(pick % c.faults.len() as u64) as usize]);
    (fault, c.stall, next(&mut c.rng))
}

/// One HTTP request from a client: its head, rewritten to close the upstream connection
/// after one answer, and its body.
pub struct Request {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl Request {
    /// The method and the path of the request line.
    pub fn method_and_path(&self) -> (&str, &str) {
        let line = std::str::from_utf8(&self.head).unwrap_or("");
        let mut words = line.split_whitespace();
        (words.next().unwrap_or(""), words.next().unwrap_or(""))
    }
}

/// Reads one request (Content-Length bodies only); None when the client closed the
/// connection first.
pub fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the proxy needs Content-Length requests: {line}"
        );
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, body }))
}

fn handle(
    client: TcpStream,
    upstream: &(String, u16),
    counters: &Counters,
    cfg: &Mutex<Config>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(Request { head, body }) = read_request(&mut reader)? else {
        return Ok(()); // an idle keep-alive connection closed
    };
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let (fault, stall, noise) = draw(cfg, &head);
    if fault.is_some() {
        counters.injected.fetch_add(1, Ordering::SeqCst);
    }
    let mut client = client;
    match fault {
        Some(Fault::Error500) => {
            return answer(
                &mut client,
                500,
                "InternalError",
                "We encountered an internal error. Please try again.",
            );
        }
        Some(Fault::SlowDown) => {
            return answer(
                &mut client,
                503,
                "SlowDown",
                "Please reduce your request rate.",
            );
        }
        Some(Fault::ResetBefore) => return reset(client),
        _ => {}
    }
    let mut up = TcpStream::connect((upstream.0.as_str(), upstream.1))?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let body_len = response.len() - body_at;
    match fault {
        Some(Fault::ResetAfter) => reset(client),
        Some(Fault::Stall) => {
            std::thread::sleep(stall);
            client.write_all(&response)
        }
        Some(Fault::Truncate) if body_len > 1 => {
            client.write_all(&response[..body_at + body_len / 2])?;
            client.shutdown(Shutdown::Both)
        }
        Some(Fault::Flip) if body_len > 0 => {
            let i = body_at + (noise % body_len as u64) as usize;
            response[i] ^= 0x01;
            client.write_all(&response)
        }
        _ => client.write_all(&response),
    }
}

fn answer(client: &mut TcpStream, status: u16, code: &str, message: &str) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let reason = if status == 500 {
        "Internal Server Error"
    } else {
        "Service Unavailable"
    };
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Closes with RST (SO_LINGER 0), as a crashed server or a middlebox would.
fn reset(client: TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized SO_LINGER value.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(client);
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
