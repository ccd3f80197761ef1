//! Quickstart: a repository whose reads are cached with `#[cache_aside]` and whose writes
//! invalidate the cache with `#[invalidates]`, over a slow in-process "database".
//!
//! ```text
//! cargo run --example quickstart                                      # in-process cache
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example quickstart  # Redis
//! ```
//!
//! Every step prints how long it took, what the cache did and how many queries have reached
//! the database so far.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use cached_runtime::{Cache, Counts, cache_aside, invalidates};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// What is cached: any `Serialize + Deserialize` type.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
enum DbError {
    NoSuchUser(u64),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::NoSuchUser(id) => write!(f, "no user with id {id}"),
        }
    }
}

impl std::error::Error for DbError {}

/// The source of truth: a slow database. Every query takes 50 ms and is counted.
struct Db {
    users: RwLock<HashMap<u64, User>>,
    queries: AtomicU64,
}

impl Db {
    const QUERY_TIME: Duration = Duration::from_millis(50);

    fn seeded() -> Self {
        let users = [(1, "Ada"), (2, "Alan"), (3, "Barbara")]
            .into_iter()
            .map(|(id, name)| {
                (
                    id,
                    User {
                        id,
                        name: name.into(),
                    },
                )
            })
            .collect();
        Db {
            users: RwLock::new(users),
            queries: AtomicU64::new(0),
        }
    }

    /// How many queries have reached the database.
    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    async fn query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Self::QUERY_TIME).await;
    }

    async fn select_user(&self, id: u64) -> Result<Option<User>, DbError> {
        self.query().await;
        Ok(self.users.read().await.get(&id).cloned())
    }

    async fn update_name(&self, id: u64, name: String) -> Result<(), DbError> {
        self.query().await;
        match self.users.write().await.get_mut(&id) {
            Some(user) => {
                user.name = name;
                Ok(())
            }
            None => Err(DbError::NoSuchUser(id)),
        }
    }

    async fn count_users(&self) -> usize {
        self.query().await;
        self.users.read().await.len()
    }
}

struct UserRepo {
    db: Db,
    cache: Cache,
}

impl UserRepo {
    /// Read-through: served from the cache under `quickstart:user:<id>`, or from the database
    /// on a miss and then cached for 60 s. A missing user (`Ok(None)`) is cached too, as a
    /// "not found" marker, so repeated lookups of an absent id stay off the database.
    /// An `Err` is never cached.
    #[cache_aside(key = "user:<id>", ttl = 60, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.select_user(id).await
    }

    /// Write, then invalidate: once the update succeeds, `quickstart:user:<id>` is deleted,
    /// so the next `find(id)` reloads the new row.
    #[invalidates(key = "user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: String) -> Result<(), DbError> {
        self.db.update_name(id, name).await
    }
}

/// No `cache = ...`: this uses the global cache installed with `cached_runtime::set_global`.
/// A key without placeholders is one entry shared by all calls.
#[cache_aside(key = "stats:user-count", ttl = 30)]
async fn user_count(db: &Db) -> usize {
    db.count_users().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Cache::builder().namespace("quickstart");
    let builder = match std::env::var("REDIS_URL") {
        Ok(url) => builder.redis(url),
        Err(_) => builder.memory(),
    };
    let cache = builder.build().await?;
    println!(
        "backend: {}, namespace: {:?}\n",
        cache.backend_name(),
        cache.namespace()
    );

    // Annotations without `cache = ...` use the global cache; here it is the same one.
    cached_runtime::set_global(cache.clone())?;

    // The database lives in this process and starts afresh on every run, but a Redis cache
    // outlives it: forget what an earlier run cached so the two agree.
    if let Err(error) = cache
        .delete(&["user:1", "user:42", "stats:user-count"])
        .await
    {
        println!("could not clear the cache ({error}); calls run uncached if it is down\n");
    }

    let repo = UserRepo {
        db: Db::seeded(),
        cache,
    };

    // First read: a miss. The body queries the database and the result is cached.
    step(&repo, "find(1)", repo.find(1)).await?;
    // Second read: a hit. The body does not run.
    step(&repo, "find(1)", repo.find(1)).await?;

    // A user that does not exist: the `None` is cached as "not found"...
    step(&repo, "find(42)", repo.find(42)).await?;
    // ...so asking again does not reach the database.
    step(&repo, "find(42)", repo.find(42)).await?;

    // A write: the database is updated, then `user:1` is deleted from the cache.
    step(
        &repo,
        "rename(1, \"Grace\")",
        repo.rename(1, "Grace".into()),
    )
    .await?;
    // The next read misses and loads the new name; the one after is a hit again.
    step(&repo, "find(1)", repo.find(1)).await?;
    step(&repo, "find(1)", repo.find(1)).await?;

    // A free function on the global cache.
    step(&repo, "user_count(&db)", user_count(&repo.db)).await;
    step(&repo, "user_count(&db)", user_count(&repo.db)).await;

    print_stats(&repo.cache);
    Ok(())
}

/// Runs one call and prints its duration, what the cache did (from the difference in
/// `cache.stats()`), the number of database queries so far and the result.
async fn step<T: fmt::Debug>(repo: &UserRepo, call: &str, fut: impl Future<Output = T>) -> T {
    let before = repo.cache.stats().total;
    let started = Instant::now();
    let result = fut.await;
    let elapsed = started.elapsed();
    let outcome = outcome(&before, &repo.cache.stats().total);
    println!(
        "{:>9}  {outcome:<12} db queries: {}   {call} -> {result:?}",
        format_duration(elapsed),
        repo.db.queries(),
    );
    result
}

/// What the cache did during one call.
fn outcome(before: &Counts, after: &Counts) -> &'static str {
    if after.errors > before.errors {
        "cache error"
    } else if after.hits > before.hits {
        "hit"
    } else if after.null_hits > before.null_hits {
        "null hit"
    } else if after.misses > before.misses {
        "miss"
    } else if after.invalidations > before.invalidations {
        "invalidated"
    } else {
        "uncached"
    }
}

fn print_stats(cache: &Cache) {
    let stats = cache.stats();
    let total = &stats.total;
    let ratio = total
        .hit_ratio()
        .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0));
    println!(
        "\ntotal: {} hits, {} null hits, {} misses, hit ratio {ratio}",
        total.hits, total.null_hits, total.misses
    );
    println!(
        "\n{:<24} {:>5} {:>9} {:>7} {:>7} {:>14} {:>7}",
        "function", "hits", "null hits", "misses", "writes", "invalidations", "errors"
    );
    for function in &stats.functions {
        let c = &function.counts;
        println!(
            "{:<24} {:>5} {:>9} {:>7} {:>7} {:>14} {:>7}",
            function.name, c.hits, c.null_hits, c.misses, c.writes, c.invalidations, c.errors
        );
    }
}

fn format_duration(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}
