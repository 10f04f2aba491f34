//! MCP round trip of a trivial tool call (p50, p99), one JSON line per figure:
//! `{"bench": "...", "value": ..., "unit": "us"}`.
//!
//! - Miyabi's client → Miyabi's server, over stdio (this binary, started again as the server)
//!   and over Streamable HTTP on loopback (the server mounted in the HTTP API, with a bearer
//!   token);
//! - Miyabi's client → `@modelcontextprotocol/server-everything` (its `echo` tool), over stdio
//!   and Streamable HTTP, when `node_modules` has it.
//!
//! `bench/mcp.mjs` prints these next to the official TypeScript client's figures.
//! Run: `cargo bench -p miyabi-mcp --bench roundtrip` (`MIYABI_MCP_BENCH_N` calls per figure,
//! 2,000 by default).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use miyabi::Engine;
use miyabi::approval::Approver;
use miyabi::server::ServerConfig;
use miyabi_mcp::McpClient;
use miyabi_mcp::McpServer;
use miyabi_mcp::server::http::{self, HttpOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

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

async fn measure(name: &str, client: &McpClient, n: usize) {
    for _ in 0..n / 10 {
        client
            .call_tool("echo", json!({"message": "hi"}))
            .await
            .unwrap();
    }
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
    times.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    report(&format!("{name}_p50"), at(0.50), "us");
    report(&format!("{name}_p99"), at(0.99), "us");
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

    // Miyabi -> Miyabi, stdio: this binary again, as the server.
    let client = McpClient::stdio("miyabi", me.to_str().unwrap())
        .env(SERVE_ENV, "1")
        .connect()
        .await
        .unwrap();
    measure("mcp_miyabi_to_miyabi_stdio", &client, n).await;
    client.close().await;

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
    measure("mcp_miyabi_to_everything_stdio", &client, n).await;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os(SERVE_ENV).is_some() {
        rt.block_on(async {
            use miyabi_mcp::rmcp::ServiceExt;
            let running = server()
                .serve(miyabi_mcp::rmcp::transport::stdio())
                .await
                .unwrap();
            let _ = running.waiting().await;
        });
        return;
    }
    rt.block_on(main_async());
}
