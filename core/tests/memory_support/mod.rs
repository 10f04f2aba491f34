//! Backend-independent memory checks, run against SQLite and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::time::Duration;

use miyabi::model::Message;
use miyabi::{Memory, MemoryError, MemoryOptions};
use serde_json::json;

/// Working memory: set / get / merge / delete / all / clear, scopes kept apart.
pub async fn working_memory_basics(memory: Memory) {
    let user = memory.resource("u1");
    let thread = memory.thread("u1");
    assert_eq!(user.get("missing").await.unwrap(), None);
    user.set("last_action", json!("deploy")).await.unwrap();
    user.set("count", 3).await.unwrap();
    thread.set("last_action", json!("review")).await.unwrap();
    assert_eq!(
        user.get("last_action").await.unwrap(),
        Some(json!("deploy"))
    );
    assert_eq!(
        thread.get("last_action").await.unwrap(),
        Some(json!("review"))
    );
    assert_eq!(user.get_as::<i64>("count").await.unwrap(), Some(3));
    assert!(matches!(
        user.get_as::<String>("count").await,
        Err(MemoryError::Decode { .. })
    ));

    let v = user
        .merge("prefs", json!({"lang": "ja", "theme": {"dark": true}}))
        .await
        .unwrap();
    assert_eq!(v, json!({"lang": "ja", "theme": {"dark": true}}));
    let v = user
        .merge(
            "prefs",
            json!({"theme": {"dark": null, "size": 2}, "tz": "JST"}),
        )
        .await
        .unwrap();
    assert_eq!(v, json!({"lang": "ja", "theme": {"size": 2}, "tz": "JST"}));
    assert_eq!(user.get("prefs").await.unwrap(), Some(v));

    let all = user.all().await.unwrap();
    let keys: Vec<_> = all.keys().cloned().collect();
    assert_eq!(keys, ["count", "last_action", "prefs"]);

    assert!(user.delete("count").await.unwrap());
    assert!(!user.delete("count").await.unwrap());
    assert_eq!(user.get("count").await.unwrap(), None);
    assert_eq!(user.clear().await.unwrap(), 2);
    assert!(user.all().await.unwrap().is_empty());
    // The thread's key with the same name is untouched.
    assert_eq!(
        thread.get("last_action").await.unwrap(),
        Some(json!("review"))
    );
}

/// TTL per key and the default TTL; expired keys are invisible and do not count.
pub async fn ttl<F, Fut>(open: F)
where
    F: Fn(MemoryOptions) -> Fut,
    Fut: Future<Output = Memory>,
{
    let memory = open(MemoryOptions::new()).await;
    let wm = memory.thread("t");
    wm.set_with_ttl("short", json!(1), Duration::from_millis(150))
        .await
        .unwrap();
    wm.set("forever", json!(2)).await.unwrap();
    assert_eq!(wm.get("short").await.unwrap(), Some(json!(1)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(wm.get("short").await.unwrap(), None);
    assert!(
        !wm.delete("short").await.unwrap(),
        "an expired key is not live"
    );
    assert_eq!(wm.get("forever").await.unwrap(), Some(json!(2)));
    let keys: Vec<_> = wm.all().await.unwrap().keys().cloned().collect();
    assert_eq!(keys, ["forever"]);

    let memory = open(MemoryOptions::new().default_ttl(Duration::from_millis(150))).await;
    let wm = memory.resource("r");
    wm.set("a", json!("x")).await.unwrap();
    wm.set_with_ttl("b", json!("y"), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(wm.get("a").await.unwrap(), None);
    assert_eq!(wm.get("b").await.unwrap(), Some(json!("y")));
}

/// LRU eviction by count: a read counts as a use.
pub async fn lru_by_count<F, Fut>(open: F)
where
    F: Fn(MemoryOptions) -> Fut,
    Fut: Future<Output = Memory>,
{
    let memory = open(MemoryOptions::new().max_entries(3)).await;
    let a = memory.resource("a");
    let b = memory.thread("b");
    a.set("k1", 1).await.unwrap();
    a.set("k2", 2).await.unwrap();
    b.set("k3", 3).await.unwrap();
    assert_eq!(a.get("k1").await.unwrap(), Some(json!(1))); // k2 is now the oldest use
    b.set("k4", 4).await.unwrap();
    assert_eq!(
        a.get("k2").await.unwrap(),
        None,
        "least recently used went first"
    );
    assert_eq!(a.get("k1").await.unwrap(), Some(json!(1)));
    assert_eq!(b.get("k3").await.unwrap(), Some(json!(3)));
    assert_eq!(b.get("k4").await.unwrap(), Some(json!(4)));
    // Overwriting a key does not grow the count.
    b.set("k4", 44).await.unwrap();
    assert_eq!(a.get("k1").await.unwrap(), Some(json!(1)));
    assert_eq!(b.get("k3").await.unwrap(), Some(json!(3)));
    // Caps hold across many writes.
    for i in 0..20 {
        a.set(&format!("n{i}"), i).await.unwrap();
    }
    let live = a.all().await.unwrap().len() + b.all().await.unwrap().len();
    assert_eq!(live, 3);
    let keys: Vec<_> = a.all().await.unwrap().keys().cloned().collect();
    assert_eq!(keys, ["n17", "n18", "n19"]);
}

/// LRU eviction by bytes (key + JSON value), and one value above the cap is refused.
pub async fn lru_by_bytes<F, Fut>(open: F)
where
    F: Fn(MemoryOptions) -> Fut,
    Fut: Future<Output = Memory>,
{
    let memory = open(MemoryOptions::new().max_bytes(100)).await;
    let wm = memory.resource("r");
    let v = "x".repeat(28); // key "kN" (2) + "\"xxx..\"" (30) = 32 bytes
    wm.set("k1", &v).await.unwrap();
    wm.set("k2", &v).await.unwrap();
    wm.set("k3", &v).await.unwrap(); // 96 bytes
    wm.set("k4", &v).await.unwrap(); // 128 > 100: k1 goes
    assert_eq!(wm.get("k1").await.unwrap(), None);
    assert!(wm.get("k2").await.unwrap().is_some());
    // A big value pushes out two.
    wm.set("k5", "y".repeat(60)).await.unwrap(); // 64 bytes: 96 + 64 > 100 → drop k3 (k2 was read)
    let keys: Vec<_> = wm.all().await.unwrap().keys().cloned().collect();
    assert_eq!(keys, ["k2", "k5"]);
    match wm.set("huge", "z".repeat(200)).await {
        Err(MemoryError::TooLarge { bytes, max, .. }) => {
            assert_eq!((bytes, max), (206, 100));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// When a cap is hit, expired keys go before live ones.
pub async fn expired_before_live<F, Fut>(open: F)
where
    F: Fn(MemoryOptions) -> Fut,
    Fut: Future<Output = Memory>,
{
    let memory = open(MemoryOptions::new().max_entries(2)).await;
    let wm = memory.thread("t");
    wm.set("old", 1).await.unwrap();
    wm.set_with_ttl("brief", 2, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    wm.set("new", 3).await.unwrap();
    assert_eq!(wm.get("old").await.unwrap(), Some(json!(1)));
    assert_eq!(wm.get("new").await.unwrap(), Some(json!(3)));
}

/// Threads: append, last-N window, idempotent appends by id, per-thread cap, listing, delete.
pub async fn threads<F, Fut>(open: F)
where
    F: Fn(MemoryOptions) -> Fut,
    Fut: Future<Output = Memory>,
{
    let memory = open(MemoryOptions::new()).await;
    let ids = memory
        .append(
            "t1",
            Some("alice"),
            &[Message::user("one"), Message::assistant("two")],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    memory
        .append("t1", None, &[Message::user("three")])
        .await
        .unwrap();
    let last = memory.last_messages("t1", 2).await.unwrap();
    let texts: Vec<_> = last.iter().map(|m| m.message.text()).collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(last[0].id, ids[1]);
    assert_eq!(last[0].resource.as_deref(), Some("alice"));
    assert_eq!(memory.last_messages("t1", 100).await.unwrap().len(), 3);
    assert!(memory.last_messages("none", 5).await.unwrap().is_empty());

    // Appending stored messages again (same ids) changes nothing.
    let again = memory.last_messages("t1", 3).await.unwrap();
    memory.append_stored(&again).await.unwrap();
    assert_eq!(memory.last_messages("t1", 100).await.unwrap().len(), 3);

    memory
        .append("t2", Some("alice"), &[Message::user("other")])
        .await
        .unwrap();
    memory
        .append("t3", Some("bob"), &[Message::user("bob's")])
        .await
        .unwrap();
    let alice: Vec<_> = memory
        .threads("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.messages))
        .collect();
    assert_eq!(alice.len(), 2);
    assert!(alice.contains(&("t1".to_owned(), 3)));
    assert!(alice.contains(&("t2".to_owned(), 1)));
    let info = memory.thread_info("t1").await.unwrap().unwrap();
    assert_eq!(info.resource.as_deref(), Some("alice"));
    assert!(info.updated_at >= info.created_at);

    memory.thread("t1").set("draft", "x").await.unwrap();
    assert!(memory.delete_thread("t1").await.unwrap());
    assert!(!memory.delete_thread("t1").await.unwrap());
    assert!(memory.thread_info("t1").await.unwrap().is_none());
    assert!(memory.last_messages("t1", 5).await.unwrap().is_empty());
    assert_eq!(memory.thread("t1").get("draft").await.unwrap(), None);
    assert_eq!(memory.threads("alice").await.unwrap().len(), 1);

    // A per-thread cap keeps the newest messages.
    let memory = open(MemoryOptions::new().max_messages_per_thread(3)).await;
    for i in 0..5 {
        memory
            .append("capped", None, &[Message::user(format!("m{i}"))])
            .await
            .unwrap();
    }
    let texts: Vec<_> = memory
        .last_messages("capped", 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.message.text())
        .collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    assert_eq!(
        memory
            .thread_info("capped")
            .await
            .unwrap()
            .unwrap()
            .messages,
        3
    );
}
