#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Memory on a real Redis server: the same checks as on SQLite. The server's URL comes from
//! `MIYABI_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/0`). The tests that need the server
//! are ignored (the runner's report says why); run them with `-- --include-ignored` where the
//! variable is set (`.ci/run` does). Every test uses its own key prefix and deletes its keys
//! afterwards.

#[cfg(feature = "redis")]
mod memory_support;

#[cfg(not(feature = "redis"))]
#[test]
#[ignore = "needs the `redis` feature and Redis: set MIYABI_TEST_REDIS_URL"]
fn redis_tests_need_the_redis_feature() {
    panic!("the memory_redis tests need `--features redis` and MIYABI_TEST_REDIS_URL");
}

#[cfg(feature = "redis")]
mod with_redis {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use miyabi::{Memory, MemoryOptions};

    use super::memory_support;

    static N: AtomicUsize = AtomicUsize::new(0);

    /// The server's URL; these tests are ignored unless asked for, and then need it.
    fn url() -> String {
        match std::env::var("MIYABI_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => panic!(
                "needs Redis: set MIYABI_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to run the Redis memory tests"
            ),
        }
    }

    /// Deletes every key under a prefix.
    async fn cleanup(url: &str, prefix: &str) {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    fn prefix(test: &str) -> String {
        format!(
            "miyabi-test-{}-{test}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Runs a shared check with fresh prefixes, then deletes what it wrote.
    macro_rules! redis_test {
        ($name:ident) => {
            #[tokio::test]
            #[ignore = "needs Redis: set MIYABI_TEST_REDIS_URL"]
            async fn $name() {
                let url = url();
                let used = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let (u, seen) = (url.clone(), used.clone());
                let open = move |options: MemoryOptions| {
                    let (u, seen) = (u.clone(), seen.clone());
                    async move {
                        let p = prefix(stringify!($name));
                        seen.lock().unwrap().push(p.clone());
                        Memory::redis(&u, &p, options).await.unwrap()
                    }
                };
                memory_support::$name(open).await;
                let prefixes = used.lock().unwrap().clone();
                for p in prefixes {
                    cleanup(&url, &p).await;
                }
            }
        };
    }

    redis_test!(ttl);
    redis_test!(lru_by_count);
    redis_test!(lru_by_bytes);
    redis_test!(expired_before_live);
    redis_test!(threads);

    #[tokio::test]
    #[ignore = "needs Redis: set MIYABI_TEST_REDIS_URL"]
    async fn working_memory_basics() {
        let url = url();
        let p = prefix("basics");
        let memory = Memory::redis(&url, &p, MemoryOptions::new()).await.unwrap();
        memory_support::working_memory_basics(memory).await;
        cleanup(&url, &p).await;
    }

    /// Needs no server: nothing listens on port 1.
    #[tokio::test]
    async fn bad_url_is_a_typed_error() {
        let err = Memory::redis("redis://127.0.0.1:1/0", "x", MemoryOptions::new())
            .await
            .unwrap_err();
        assert!(matches!(err, miyabi::MemoryError::Redis(_)), "{err}");
    }
}
