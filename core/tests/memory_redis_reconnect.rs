#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Redis memory survives a dropped connection: the server closes every client connection, and
//! the next operations reconnect. A separate test binary, because closing every client of the
//! server would break tests running beside it. Needs `--features redis` and
//! `MIYABI_TEST_REDIS_URL`, so it is ignored (the runner's report says why); run it with
//! `-- --include-ignored` where the variable is set (`.ci/run` does).

#[cfg(not(feature = "redis"))]
#[test]
#[ignore = "needs the `redis` feature and Redis: set MIYABI_TEST_REDIS_URL"]
fn reconnect_needs_the_redis_feature() {
    panic!("memory_redis_reconnect needs `--features redis` and MIYABI_TEST_REDIS_URL");
}

#[cfg(feature = "redis")]
#[tokio::test]
#[ignore = "needs Redis: set MIYABI_TEST_REDIS_URL"]
async fn reconnects_after_the_server_drops_the_connection() {
    use std::time::Duration;

    use miyabi::{Memory, MemoryOptions};
    use serde_json::json;

    let url = match std::env::var("MIYABI_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("needs Redis: set MIYABI_TEST_REDIS_URL to run the Redis reconnect test"),
    };
    let prefix = format!("miyabi-test-reconnect-{}", std::process::id());
    let memory = Memory::redis(&url, &prefix, MemoryOptions::new().max_entries(10))
        .await
        .unwrap();
    let wm = memory.thread("t");
    wm.set("a", json!(1)).await.unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the memory's connection was closed");

    // The first command may see the closed socket; the connection comes back by itself.
    let mut value = None;
    for _ in 0..40 {
        match wm.get("a").await {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(e) => {
                eprintln!("while reconnecting: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(value, Some(Some(json!(1))));
    wm.set("b", json!(2)).await.unwrap();
    assert_eq!(wm.all().await.unwrap().len(), 2);

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut admin)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
}
