use cached_runtime::{Cache, invalidates};

pub struct Users {
    cache: Cache,
}

#[derive(Debug)]
pub struct DbError;

impl Users {
    #[invalidates(keys = ["user:<id>", "team:<team>:members"], cache = self.cache)]
    pub async fn move_user(&self, id: u64, team: u32) -> Result<(), DbError> {
        let _ = (id, team);
        Ok(())
    }
}
