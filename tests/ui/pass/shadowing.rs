// The expansion names everything by absolute path and its locals are hygienic, so the
// user's own `Result`, `Option`, `key`, `cache`, `Cache`, `Seg`, `core`, ... cannot break it.
#![allow(dead_code, non_upper_case_globals, non_camel_case_types, unused_variables, unused_macros)]

mod shadowed {
    use ::cached_runtime::{cache_aside, invalidates};

    struct Result;
    struct Option;
    struct Some;
    struct Ok;
    struct Vec;
    struct String;
    struct Box;
    struct Global;
    struct Probe;
    struct Site;
    struct Cache;
    struct Seg;
    struct Plain;
    struct Res;
    struct cached_runtime;
    mod core {}
    mod std {}
    mod __private {}
    fn key() {}
    fn keys() {}
    fn cacheable() {}
    fn invalidate() {}
    fn concat() {}
    static cache: u8 = 0;
    static __SITE: u8 = 0;
    macro_rules! concat {
        ($($t:tt)*) => {
            compile_error!("the user's concat! was called")
        };
    }
    macro_rules! module_path {
        () => {
            compile_error!("the user's module_path! was called")
        };
    }

    pub(crate) struct Repo {
        pub(crate) cache: ::cached_runtime::Cache,
    }

    impl Repo {
        #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
        pub(crate) async fn user(&self, id: u64) -> ::std::option::Option<::std::string::String> {
            ::std::option::Option::None
        }

        #[cache_aside(key = "r:<id>", ttl = 600, cache = self.cache)]
        pub(crate) async fn result(
            &self,
            id: u32,
        ) -> ::std::result::Result<::std::option::Option<u32>, ::std::io::Error> {
            ::std::result::Result::Ok(::std::option::Option::Some(id))
        }

        #[invalidates(key = "user:<id>", cache = self.cache)]
        pub(crate) async fn rename(&self, id: u64) -> ::std::result::Result<(), ::std::io::Error> {
            ::std::result::Result::Ok(())
        }
    }
}

// Parameters named like the generated locals, or like the user's items, reach the key and the
// body.
mod params {
    use ::cached_runtime::{cache_aside, invalidates};

    #[cache_aside(key = "p:<__cache>:<__key>:<cache>:<key>", ttl = 600)]
    pub(crate) async fn locals(__cache: u8, __key: u8, cache: u8, key: u8) -> u32 {
        u32::from(__cache) + u32::from(__key) + u32::from(cache) + u32::from(key)
    }

    #[invalidates(keys = ["p:<__keys>"])]
    pub(crate) async fn locals2(__keys: u8) -> u8 {
        __keys
    }
}

fn main() {
    let rt = ::tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        assert_eq!(params::locals(1, 2, 3, 4).await, 10);
        assert_eq!(params::locals2(4).await, 4);
        let _ = shadowed::Repo::user;
        let _ = shadowed::Repo::result;
        let _ = shadowed::Repo::rename;
    });
}
