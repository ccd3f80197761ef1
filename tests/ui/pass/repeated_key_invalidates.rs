use cached_runtime::invalidates;

#[invalidates(key = "user:<id>", key = "team:<team>:members")]
async fn move_user(id: u64, team: u32) {
    let _ = (id, team);
}

fn main() {
    let _ = move_user(1, 2);
}
