use cached_runtime::{Cache, cache_aside};
use serde::{Deserialize, Serialize};
#[derive(Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}
#[derive(Debug)]
pub struct DbError;
pub struct Users {
    cache: Cache,
}
impl Users {
    /// Finds a user.
    pub async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        static __CACHED_RUNTIME_SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::find"),
            600,
            0,
        );
        let __cached_runtime_cache: ::cached_runtime::__private::CacheRef<'_> = &(self
            .cache);
        let __cached_runtime_key = ::cached_runtime::__private::key(
            __cached_runtime_cache,
            &[
                ::cached_runtime::__private::Seg::Lit("user:"),
                ::cached_runtime::__private::Seg::Arg(&id),
            ],
        );
        ::cached_runtime::__private::cache_aside(
                __cached_runtime_cache,
                __cached_runtime_key,
                &__CACHED_RUNTIME_SITE,
                ::cached_runtime::__private::cacheable::<
                    Result<Option<User>, DbError>,
                    _,
                >(
                    ::cached_runtime::__private::Probe::<
                        Result<Option<User>, DbError>,
                    >::new()
                        .shape(),
                ),
                async {
                    let __cached_runtime_ret: Result<Option<User>, DbError> = {
                        Ok(Some(User { id, name: "Ada".into() }))
                    };
                    __cached_runtime_ret
                },
            )
            .await
    }
}
