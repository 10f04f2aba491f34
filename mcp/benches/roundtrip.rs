//! MCP round trip of a trivial tool call (p50, p99), one JSON line per figure:
//! `{"bench": "...", "value": ..., "unit": "us"}`.
//!
//! - Miyabi's client → Miyabi's server, over stdio (this binary, started again as the server,
//!   which serves as `miyabi mcp` does: `cli::runtime` and `cli::serve`), with the client's
//!   calls made from the main thread of a 2-worker multi-thread runtime (`_stdio`, as
//!   `#[tokio::main]` code), from a task of that runtime (`_stdio_task_client`) and from a
//!   current-thread runtime (`_stdio_ct_client`); on Linux also the CPU time per call of each
//!   process (`_stdio_cpu_client`, `_stdio_cpu_server`, from `/proc/*/task/*/schedstat`);
//! - the floor of a stdio round trip on this host (`mcp_stdio_floor`): two processes
//!   ping-ponging one JSON line over pipes with tokio (current-thread runtimes, serde_json on
//!   both sides), no MCP;
//! - Miyabi's client → Miyabi's server over Streamable HTTP on loopback (the server mounted in
//!   the HTTP API, with a bearer token);
//! - Miyabi's client → `@modelcontextprotocol/server-everything` (its `echo` tool), over stdio
//!   and Streamable HTTP, when `node_modules` has it.
//!
//! `bench/mcp.mjs` prints these next to the official TypeScript client's figures.
//! Run: `cargo bench -p miyabi-mcp --bench roundtrip` (`MIYABI_MCP_BENCH_N` calls per figure,
//! 2,000 by default; `MIYABI_MCP_BENCH_ONLY=stdio` for the stdio figures only).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use miyabi::Engine;
use miyabi::approval::Approver;
use miyabi::server::ServerConfig;
use miyabi_mcp::McpClient;
use miyabi_mcp::McpServer;
use miyabi_mcp::cli::{self, McpArgs};
use miyabi_mcp::server::http::{self, HttpOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Set in the child: `mcp` serves MCP, `floor` answers JSON lines.
const SERVE_ENV: &str = "MIYABI_MCP_BENCH_SERVE";
const TOKEN: &str = "bench-token-0123456789";

fn report(name: &str, value: f64, unit: &str) {
    println!("{{\"bench\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\"}}");
}

fn echo_tool() -> miyabi::tool::FnTool {
    miyabi::tool::tool_json(
        "echo",
        "Echoes the message",
        json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
        |_ctx, args: Value| async move { Ok::<_, String>(args["message"].clone()) },
    )
}

fn server() -> McpServer {
    McpServer::builder(Engine::in_memory())
        .tool(echo_tool())
        .build()
}

fn percentiles(name: &str, mut times: Vec<f64>) {
    times.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    report(&format!("{name}_p50"), at(0.50), "us");
    report(&format!("{name}_p99"), at(0.99), "us");
}

/// Nanoseconds on CPU of every thread of process `pid` so far (Linux), or `None`.
fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// The pid of this process's only child (Linux), or `None`.
fn child_pid() -> Option<u32> {
    let me = std::process::id();
    let mut found = None;
    for task in std::fs::read_dir(format!("/proc/{me}/task"))
        .ok()?
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).ok()?;
        for pid in children.split_whitespace() {
            if found.is_some() {
                return None;
            }
            found = pid.parse().ok();
        }
    }
    found
}

/// `n` timed calls after `n / 10` warm-up calls; with `cpu`, also the CPU time per call of this
/// process and of the server (its only child).
async fn measure_with(name: &str, client: &McpClient, n: usize, cpu: bool) {
    for _ in 0..n / 10 {
        client
            .call_tool("echo", json!({"message": "hi"}))
            .await
            .unwrap();
    }
    let server = if cpu { child_pid() } else { None };
    let before = server.and_then(|s| Some((cpu_ns(std::process::id())?, cpu_ns(s)?)));
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .call_tool("echo", json!({"message": "hi"}))
            .await
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_ne!(r.is_error, Some(true));
    }
    let after = server.and_then(|s| Some((cpu_ns(std::process::id())?, cpu_ns(s)?)));
    if let (Some((c0, s0)), Some((c1, s1))) = (before, after) {
        let per_call = |ns: u64| ns as f64 / 1e3 / n as f64;
        report(&format!("{name}_cpu_client"), per_call(c1 - c0), "us");
        report(&format!("{name}_cpu_server"), per_call(s1 - s0), "us");
    }
    percentiles(name, times);
}

async fn measure(name: &str, client: &McpClient, n: usize) {
    measure_with(name, client, n, false).await;
}

/// The client of a stdio connection to this binary serving MCP.
fn stdio_client(me: &std::path::Path) -> miyabi_mcp::McpClientBuilder {
    McpClient::stdio("miyabi", me.to_str().unwrap()).env(SERVE_ENV, "mcp")
}

/// The floor: one JSON-RPC line out and one back over the pipes of a child process (this
/// binary with `SERVE_ENV=floor`), serde_json on both sides, no MCP.
async fn floor(me: &std::path::Path, n: usize) {
    let mut child = tokio::process::Command::new(me)
        .env(SERVE_ENV, "floor")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        let request = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}});
        let mut out = serde_json::to_vec(&request).unwrap();
        out.push(b'\n');
        stdin.write_all(&out).await.unwrap();
        line.clear();
        stdout.read_line(&mut line).await.unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["id"], json!(i));
        if i >= n / 10 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    percentiles("mcp_stdio_floor", times);
    drop(stdin);
    let _ = child.wait().await;
}

/// The floor's server: answers each JSON-RPC line with a tool result, on a current-thread
/// runtime, its standard streams as non-blocking pipes.
async fn serve_floor() {
    let (stdin, mut stdout) = miyabi_mcp::rmcp::transport::stdio_pipes();
    let mut lines = BufReader::new(stdin).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let request: Value = serde_json::from_str(&line).unwrap();
        let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [{"type": "text", "text": request["params"]["arguments"]["message"]}], "isError": false}});
        let mut out = serde_json::to_vec(&answer).unwrap();
        out.push(b'\n');
        stdout.write_all(&out).await.unwrap();
        stdout.flush().await.unwrap();
    }
}

fn everything() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    p.exists().then_some(p)
}

async fn main_async() {
    let n: usize = std::env::var("MIYABI_MCP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let me = std::env::current_exe().unwrap();

    // Miyabi -> Miyabi, stdio: this binary again, as the server; the calls from the main
    // thread (`block_on`) of this multi-thread runtime.
    let client = stdio_client(&me).connect().await.unwrap();
    measure_with("mcp_miyabi_to_miyabi_stdio", &client, n, true).await;
    client.close().await;

    // The same from a task of this runtime (as a server's or an agent's code calls).
    let me2 = me.clone();
    tokio::spawn(async move {
        let client = stdio_client(&me2).connect().await.unwrap();
        measure("mcp_miyabi_to_miyabi_stdio_task_client", &client, n).await;
        client.close().await;
    })
    .await
    .unwrap();

    // The same from a current-thread runtime (on a thread of its own).
    let me2 = me.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = stdio_client(&me2).connect().await.unwrap();
            measure("mcp_miyabi_to_miyabi_stdio_ct_client", &client, n).await;
            client.close().await;
            floor(&me2, n).await;
        });
    })
    .join()
    .unwrap();
    if std::env::var("MIYABI_MCP_BENCH_ONLY").as_deref() == Ok("stdio") {
        return;
    }

    // Miyabi -> Miyabi, Streamable HTTP on loopback, under the API's bearer auth.
    let srv = server();
    let opts = HttpOptions::default();
    let stop = opts.shutdown.clone();
    let config = http::mount(
        ServerConfig::new().token(TOKEN, Approver::new("bench")),
        srv.clone(),
        opts,
    );
    let handle = miyabi::server::serve(
        srv.engine().clone(),
        config,
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let client = McpClient::http("miyabi", format!("http://{}/mcp", handle.local_addr()))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .connect()
        .await
        .unwrap();
    measure("mcp_miyabi_to_miyabi_http", &client, n).await;
    client.close().await;
    stop.cancel();
    handle.shutdown().await.unwrap();

    let Some(entry) = everything() else {
        eprintln!("bench: server-everything figures skipped: run `npm ci` at the repository root");
        return;
    };
    let client = McpClient::stdio("everything", "node")
        .args([entry.to_str().unwrap(), "stdio"])
        .connect()
        .await
        .unwrap();
    measure_with("mcp_miyabi_to_everything_stdio", &client, n, true).await;
    client.close().await;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new("node")
        .arg(&entry)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("listening on port") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = McpClient::http("everything", format!("http://127.0.0.1:{port}/mcp"))
        .connect()
        .await
        .unwrap();
    measure("mcp_miyabi_to_everything_http", &client, n).await;
    client.close().await;
    let _ = child.kill().await;
}

fn main() {
    match std::env::var(SERVE_ENV).as_deref() {
        // The server as `miyabi mcp` runs it over stdio: its runtime, its transport.
        Ok("mcp") => {
            let args = McpArgs::default();
            cli::runtime(&args)
                .unwrap()
                .block_on(cli::serve(server(), &args))
                .unwrap();
        }
        Ok(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(serve_floor()),
        Err(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(main_async()),
    }
}
