// Bodies with `?` and `return`, and a body that moves an owned parameter used by the key.
#![allow(dead_code)]

use cached_runtime::cache_aside;

#[derive(Debug)]
struct DbError;

impl From<std::num::ParseIntError> for DbError {
    fn from(_: std::num::ParseIntError) -> Self {
        DbError
    }
}

#[cache_aside(key = "parse:<text>", ttl = 600)]
async fn parse(text: &str) -> Result<Option<u64>, DbError> {
    if text.is_empty() {
        return Ok(None);
    }
    let n: u64 = text.parse()?;
    Ok(Some(n))
}

#[cache_aside(key = "early:<id>", ttl = 600)]
async fn early(id: u64) -> Option<u64> {
    if id == 0 {
        return None;
    }
    Some(id)
}

#[cache_aside(key = "name:<name>", ttl = 600)]
async fn consume(name: String) -> usize {
    let len = name.len();
    drop(name);
    len
}

#[cache_aside(key = "into:<name>", ttl = 600)]
async fn into_upper(name: String) -> String {
    let mut name = name;
    name.make_ascii_uppercase();
    name
}

#[cache_aside(key = "await:<id>", ttl = 600)]
async fn awaits(id: u64) -> Result<u64, DbError> {
    let x = early(id).await.ok_or(DbError)?;
    Ok(x + parse("1").await?.unwrap_or(0))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        assert_eq!(parse("").await.unwrap(), None);
        assert_eq!(parse("42").await.unwrap(), Some(42));
        assert!(parse("x").await.is_err());
        assert_eq!(early(0).await, None);
        assert_eq!(consume("abc".into()).await, 3);
        assert_eq!(into_upper("abc".into()).await, "ABC");
        assert_eq!(awaits(2).await.unwrap(), 3);
    });
}
