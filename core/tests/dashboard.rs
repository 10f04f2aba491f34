//! The dashboard's embedded assets as the server sends them: routes, content types, cache
//! validators, the Content-Security-Policy, and what the assets may not contain (inline
//! scripts and styles, other origins, HTML parsing of data). The browser test is
//! `tests/dashboard.test.mjs` (Chromium, over `examples/dashboard_e2e.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::Engine;
use miyabi::approval::Approver;
use miyabi::server::{ServerConfig, ServerHandle, serve};
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};

const TOKEN: &str = "alice-token-0123456789abcdef";

async fn server() -> (tempfile::TempDir, ServerHandle, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let config = ServerConfig::new().token(TOKEN, Approver::new("alice"));
    let server = serve(engine, config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    (dir, server, base)
}

/// Every asset: path, expected content type prefix.
const ASSETS: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/assets/app.js", "text/javascript; charset=utf-8"),
    ("/assets/graph.js", "text/javascript; charset=utf-8"),
    ("/assets/app.css", "text/css; charset=utf-8"),
    ("/assets/icon.svg", "image/svg+xml"),
];

async fn get(url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn assets_are_served_with_types_csp_and_validators_without_a_token() {
    let (_dir, server, base) = server().await;
    let http = reqwest::Client::new();
    for (path, ty) in ASSETS {
        let (status, h, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(h[CONTENT_TYPE], *ty, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert_eq!(h[CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        for d in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(d), "{csp} lacks {d}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        // Revalidation: the same ETag gives 304 without a body.
        let tag = h[ETAG].clone();
        let r = http
            .get(format!("{base}{path}"))
            .header(IF_NONE_MATCH, tag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(r.headers()[ETAG], tag);
        assert!(r.bytes().await.unwrap().is_empty());
        let r = http
            .get(format!("{base}{path}"))
            .header(IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // HEAD works; unknown assets are 404; the API still wants its token.
    let r = http.head(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _, _) = get(&format!("{base}/assets/nope.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&format!("{base}/assets/../Cargo.toml")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&format!("{base}/api/runs")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn assets_hold_no_inline_code_no_other_origin_and_no_html_parsing() {
    let (_dir, server, base) = server().await;
    let mut all = String::new();
    for (path, _) in ASSETS {
        let (_, _, body) = get(&format!("{base}{path}")).await;
        all.push_str(&body);
        // Nothing from elsewhere: the only absolute URL is the SVG namespace.
        let stripped = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !stripped.contains("http://") && !stripped.contains("https://"),
            "{path} names another origin"
        );
        assert!(!body.contains("//cdn"), "{path}");
        assert!(!body.contains("@import"), "{path}");
    }
    let (_, _, index) = get(&format!("{base}/")).await;
    // Every <script> has a src (no inline script), no inline handlers or style attributes.
    for part in index.split("<script").skip(1) {
        let tag = &part[..part.find('>').unwrap()];
        assert!(
            tag.contains("src=\"/assets/"),
            "inline script: <script{tag}>"
        );
        assert!(part[part.find('>').unwrap() + 1..].starts_with("</script>"));
    }
    assert!(!index.contains("<style"), "inline <style>");
    assert!(!index.contains(" style="), "style attribute");
    assert!(!index.contains(" onclick=") && !index.contains(" onload="));
    // Scripts build the page with textContent: no HTML parsing of strings.
    for path in ["/assets/app.js", "/assets/graph.js"] {
        let (_, _, js) = get(&format!("{base}{path}")).await;
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('style'",
            "createContextualFragment",
        ] {
            assert!(!js.contains(bad), "{path} uses {bad}");
        }
        // Every module it imports is served.
        for part in js.split("from './").skip(1) {
            let name = &part[..part.find('\'').unwrap()];
            let (status, _, _) = get(&format!("{base}/assets/{name}")).await;
            assert_eq!(status, StatusCode::OK, "{path} imports {name}");
        }
    }
    // The hash routes that notification links use are handled by the app.
    let (_, _, js) = get(&format!("{base}/assets/app.js")).await;
    for route in ["\\/runs", "\\/approvals", "\\/audit"] {
        assert!(js.contains(route), "no route {route}");
    }
    // Small: the whole dashboard stays well under 200 KiB.
    assert!(all.len() < 200 * 1024, "assets are {} bytes", all.len());
    server.shutdown().await.unwrap();
}

/// The dashboard's WebSocket sends the token as `?access_token=` (browsers cannot set
/// headers on a WebSocket); the server accepts it there.
#[tokio::test]
async fn the_websocket_takes_the_token_from_the_query_as_the_dashboard_sends_it() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (_dir, server, _) = server().await;
    let addr = server.local_addr();
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws?access_token=wrong-token"))
            .await
            .is_err()
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws?access_token={TOKEN}"))
            .await
            .unwrap();
    ws.send(Message::text(r#"{"subscribe": "runs"}"#))
        .await
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "subscribed");
    server.shutdown().await.unwrap();
}
