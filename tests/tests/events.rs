//! The event channel's messages as the Lua scripts (and a write-through) publish them, parsed by
//! the runtime's own parser: a fill (with and without the value), a release, an invalidation, a
//! tag's, and the fill of a write-through that voided a lease.

use std::time::Duration;

use cached_runtime::{__private::events::parse, Cache, cache_aside, cache_put, invalidates};
use futures_util::StreamExt;
use tests::RedisServer;

struct Repo {
    cache: Cache,
}

#[derive(Debug)]
struct Failed;

impl Repo {
    #[cache_aside(key = "small:<id>", ttl = 60, cache = self.cache)]
    async fn small(&self, id: u32) -> u32 {
        id
    }

    #[cache_aside(key = "large:<id>", ttl = 60, cache = self.cache)]
    async fn large(&self, id: u32) -> Vec<u8> {
        vec![7; 4096 + id as usize]
    }

    #[cache_aside(key = "failing:<id>", ttl = 60, cache = self.cache)]
    async fn failing(&self, id: u32) -> Result<u32, Failed> {
        let _ = id;
        Err(Failed)
    }

    #[invalidates(keys = ["small:<id>", "large:<id>"], cache = self.cache)]
    async fn update(&self, id: u32) {
        let _ = id;
    }

    #[cache_put(key = "small:<id>", ttl = 60, cache = self.cache)]
    async fn save(&self, id: u32) -> u32 {
        id
    }

    #[invalidates(tags = ["group:<group>", "all"], cache = self.cache)]
    async fn regroup(&self, group: u32) {
        let _ = group;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_publishes_what_the_parser_reads() {
    let server = RedisServer::spawn();
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("app:__events").await.unwrap();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("app")
        .fill_event_max_value(1024)
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    let repo = Repo { cache };

    assert_eq!(repo.small(1).await, 1);
    let stored = server.get_raw("app:small:1").expect("stored");
    assert_eq!(repo.large(1).await.len(), 4097);
    assert!(repo.failing(1).await.is_err());
    repo.update(1).await;
    repo.regroup(3).await;
    // A write-through with no load in flight publishes nothing; over a lease (a load in
    // flight), it voids the lease and publishes a fill event.
    repo.save(2).await;
    let _: () = server.cmd(&[
        "SET",
        "{app:small:2}:lock",
        "00000000000000aa",
        "PX",
        "5000",
    ]);
    repo.save(2).await;

    let mut messages = pubsub.on_message();
    let mut next = async || {
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("an event within 5 s")
            .expect("the subscription is open");
        let payload = msg.get_payload_bytes().to_vec();
        assert_eq!(payload[0], 1, "version byte of {payload:?}");
        parse(&payload).unwrap_or_else(|| panic!("unparsed event {payload:?}"))
    };
    // A small value travels with its fill event.
    let (kind, key, value) = next().await;
    assert_eq!((kind, key.as_str()), ('f', "app:small:1"));
    assert_eq!(value, Some(stored));
    // A value over fill_event_max_value does not.
    assert_eq!(next().await, ('f', "app:large:1".to_owned(), None));
    // An Err is not stored: the lease is released.
    assert_eq!(next().await, ('r', "app:failing:1".to_owned(), None));
    // One invalidation event per key.
    assert_eq!(next().await, ('i', "app:small:1".to_owned(), None));
    assert_eq!(next().await, ('i', "app:large:1".to_owned(), None));
    // One per tag (one script: both tags are on the one server), naming the tag.
    assert_eq!(next().await, ('t', "app:group:3".to_owned(), None));
    assert_eq!(next().await, ('t', "app:all".to_owned(), None));
    // The write-through's fill carries no value (waiters read the key): it is published after
    // the write, not with it.
    assert_eq!(next().await, ('f', "app:small:2".to_owned(), None));
}
