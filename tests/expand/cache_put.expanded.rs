use cached_runtime::{Cache, cache_put};
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    pub async fn rename(&self, id: u64, name: String) -> Result<Option<User>, DbError> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(__cache, &["user:", ""], &[&id]);
        ::cached_runtime::__private::cache_put(
                __cache,
                __key,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::rename"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        0,
                    );
                    &__POLICY
                },
                ::cached_runtime::__private::put_ops::<
                    Result<Option<User>, DbError>,
                    _,
                >(
                    ::cached_runtime::__private::probe::<Result<Option<User>, DbError>>()
                        .shape(),
                ),
                async {
                    let __ret: Result<Option<User>, DbError> = {
                        Ok(Some(User { id, name }))
                    };
                    __ret
                },
            )
            .await
    }
}
