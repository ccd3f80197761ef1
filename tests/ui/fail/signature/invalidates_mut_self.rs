use cached_runtime::invalidates;

struct Repo;

impl Repo {
    #[invalidates(key = "user:<id>")]
    async fn rename(&mut self, id: u64, name: &str) -> Result<(), std::io::Error> {
        println!("{id}: {name}");
        Ok(())
    }
}

fn main() {}
