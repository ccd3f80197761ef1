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
        static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::find"),
            600,
            0,
        );
        let __cache = &(self.cache);
        let __key = ::cached_runtime::__private::key(
            __cache,
            &[
                ::cached_runtime::__private::Seg::Lit("user:"),
                ::cached_runtime::__private::Seg::Arg(&id),
            ],
        );
        ::cached_runtime::__private::cache_aside(
                __cache,
                __key,
                &__SITE,
                ::cached_runtime::__private::cacheable::<
                    Result<Option<User>, DbError>,
                    _,
                >(
                    ::cached_runtime::__private::Probe::<
                        Result<Option<User>, DbError>,
                    >::new()
                        .shape(),
                ),
                async { Ok(Some(User { id, name: "Ada".into() })) },
            )
            .await
    }
}
