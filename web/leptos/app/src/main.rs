//! The example's server: the Leptos page (rendered with the runs read from the engine) and
//! Miyabi's API router (under `/miyabi`: the API at `/miyabi/api`, the dashboard at
//! `/miyabi/`) on one axum app, with a workflow that has an approval gate.
//!
//! `/chat` is the agent route of the page's `<MiyabiChat>` (model `MIYABI_CHAT_MODEL`, default
//! `openai/gpt-4o-mini`, configured from the environment like any Miyabi model:
//! `OPENAI_API_KEY`, `OPENAI_BASE_URL`).
//!
//! Environment: `MIYABI_DB` (SQLite file, default `miyabi-leptos.db`), `MIYABI_ADDR` (default
//! `127.0.0.1:3000`; port 0 picks a free one), `LEPTOS_SITE_ROOT` (the directory with `pkg/`
//! that `scripts/build-leptos` writes, default `target/leptos/site`). Prints one JSON line
//! `{"url": ...}` once it listens; stops when stdin closes or on Ctrl-C.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt;
use leptos::config::LeptosOptions;
use miyabi::approval::{ApprovalGate, Approver};
use miyabi::server::{ServerConfig, generate_token, router};
use miyabi::{Agent, CommittedWorkflow, Engine, StepContext, StepError, Workflow, step_fn};
use miyabi_leptos::ChatMessage;
use miyabi_leptos_app::shell;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What `<MiyabiChat>` sends.
#[derive(serde::Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
}

/// The example's workflow: write a draft, wait for an editor's approval (the draft is the data
/// under review, editable), then publish what was approved.
fn publish_workflow() -> Result<CommittedWorkflow, BoxError> {
    let workflow = Workflow::new("publish")
        .step(
            "draft",
            step_fn(|_ctx: StepContext, input: Value| async move {
                // Stands for a model call: long enough to see the step running.
                tokio::time::sleep(Duration::from_millis(400)).await;
                let topic = input["topic"].as_str().unwrap_or("something").to_string();
                Ok::<_, StepError>(json!({
                    "title": format!("Notes on {topic}"),
                    "body": format!("A short post about {topic}."),
                }))
            }),
        )
        .await_approval(
            "review",
            ApprovalGate::new()
                .title("Review the draft")
                .summary_from(|draft| {
                    format!(
                        "Publish “{}”? Edit the title or body before approving.",
                        draft["title"].as_str().unwrap_or("?")
                    )
                })
                .schema(json!({
                    "type": "object",
                    "required": ["title", "body"],
                    "properties": {
                        "title": {"type": "string", "minLength": 1},
                        "body": {"type": "string"}
                    }
                })),
        )
        .then(
            "publish",
            step_fn(|_ctx: StepContext, decision: Value| async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if decision["approved"] != json!(true) {
                    return Ok::<_, StepError>(json!({ "published": false }));
                }
                let post = &decision["data"];
                Ok(json!({
                    "published": true,
                    "title": post["title"],
                    "by": decision["decided_by"],
                }))
            }),
        )
        .commit()?;
    Ok(workflow)
}

/// Whether the request carries the session cookie the page set.
fn signed_in(headers: &HeaderMap, session: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim() == format!("miyabi_session={session}"))
}

/// The app's sign-in, reduced to one cookie: a request that carries the session cookie the
/// page set is let through to the API as the editor (its bearer token added here, so no token
/// ever reaches the browser). A real app maps its own session to an `Approver`'s token here.
async fn session_to_token(
    session: String,
    token: String,
    mut req: Request,
    next: Next,
) -> Response {
    if signed_in(req.headers(), &session)
        && !req.headers().contains_key(header::AUTHORIZATION)
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(req).await
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Leptos spawns the page's resources on tokio.
    any_spawner::Executor::init_tokio()?;
    let db = std::env::var("MIYABI_DB").unwrap_or_else(|_| "miyabi-leptos.db".to_string());
    let addr = std::env::var("MIYABI_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let site_root =
        std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/leptos/site".to_string());

    let engine = Engine::sqlite(&db)?;
    engine.register(&publish_workflow()?);

    // The API, as the editor; reached from the page through the session cookie.
    let token = generate_token()?;
    let session = generate_token()?;
    let api = router(
        engine.clone(),
        ServerConfig::new().token(&token, Approver::new("editor")),
    )
    .layer(middleware::from_fn({
        let session = session.clone();
        move |req: Request, next: Next| session_to_token(session.clone(), token.clone(), req, next)
    }));

    let options = LeptosOptions::builder()
        .output_name("miyabi_leptos_app")
        .site_root(site_root.as_str())
        .site_pkg_dir("pkg")
        .build();
    let page = {
        let (engine, options) = (engine.clone(), options.clone());
        let render = leptos_axum::render_app_async_with_context(
            move || miyabi_leptos::provide_engine(engine.clone()),
            move || shell(options.clone()),
        );
        let cookie = format!("miyabi_session={session}; Path=/; HttpOnly; SameSite=Strict");
        move |req: Request<Body>| {
            let render = render.clone();
            let cookie = cookie.clone();
            async move {
                let mut resp = render(req).await;
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
        }
    };
    // The chat's agent route: the conversation in, the answer out as the UI message stream.
    let chat = {
        let agent = Agent::new("assistant")
            .model(
                std::env::var("MIYABI_CHAT_MODEL")
                    .unwrap_or_else(|_| "openai/gpt-4o-mini".to_string()),
            )
            .instructions("You help editors write short blog posts. Answer briefly.");
        let session = session.clone();
        move |headers: HeaderMap, axum::Json(body): axum::Json<ChatRequest>| {
            let agent = agent.clone();
            let session = session.clone();
            async move {
                if !signed_in(&headers, &session) {
                    return Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .body(Body::from("sign in first"))
                        .unwrap_or_default();
                }
                let events = miyabi_leptos::chat_events(&agent, &body.messages)
                    .map(Ok::<_, std::convert::Infallible>);
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .header("x-vercel-ai-ui-message-stream", "v1")
                    .body(Body::from_stream(events))
                    .unwrap_or_default()
            }
        }
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/chat", axum::routing::post(chat))
        .nest_service(
            "/pkg",
            tower_http::services::ServeDir::new(format!("{site_root}/pkg")),
        )
        // The API (and Miyabi's dashboard, which it serves at its root) under /miyabi.
        .nest("/miyabi", api);

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("{}", json!({ "url": url }));

    let stop = async {
        let stdin_closed = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            _ = stdin_closed => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}
