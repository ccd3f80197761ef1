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
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(__cache, &["user:", ""], &[&id]);
        ::cached_runtime::__private::cache_aside(
                __cache,
                __key,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::find"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        0,
                    );
                    &__POLICY
                },
                ::cached_runtime::__private::ops::<
                    Result<Option<User>, DbError>,
                    _,
                >(
                    ::cached_runtime::__private::probe::<Result<Option<User>, DbError>>()
                        .shape(),
                    ::cached_runtime::__private::probe::<Result<Option<User>, DbError>>()
                        .sharing(),
                ),
                async {
                    let __ret: Result<Option<User>, DbError> = {
                        Ok(Some(User { id, name: "Ada".into() }))
                    };
                    __ret
                },
            )
            .await
    }
}
