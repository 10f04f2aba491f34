//! A loopback HTTP/1.1 receiver for notification tests: scripted replies, recorded requests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A header's value, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_owned(),
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1 answering with scripted replies in order (the last one
/// repeats), recording every request.
pub struct Receiver {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// How many requests were recorded so far (for [`Receiver::wait_for`]).
    count: Arc<tokio::sync::watch::Sender<usize>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(replies: Vec<Reply>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new((replies, Mutex::new(0usize)));
        let seen2 = seen.clone();
        let count = Arc::new(tokio::sync::watch::channel(0usize).0);
        let count2 = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (seen, script, count) = (seen2.clone(), script.clone(), count2.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, seen, script, count).await;
                });
            }
        });
        Receiver {
            base: format!("http://{addr}"),
            seen,
            count,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests were recorded.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.count.subscribe();
        rx.wait_for(|c| *c >= n).await.unwrap();
    }
}

async fn serve(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<(Vec<Reply>, Mutex<usize>)>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let header_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("").to_owned();
        let path = request_line.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let len: usize = header(&headers, "content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        let start = header_end + 4;
        while buf.len() < start + len {
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body = buf[start..start + len].to_vec();
        buf.drain(..start + len);
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            body,
        });
        count.send_modify(|c| *c += 1);
        let r = {
            let mut i = script.1.lock().unwrap();
            let r = script.0[(*i).min(script.0.len() - 1)].clone();
            *i += 1;
            r
        };
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            r.status,
            r.body.len()
        );
        for (k, v) in &r.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&r.body);
        sock.write_all(out.as_bytes()).await?;
        sock.flush().await?;
    }
}
