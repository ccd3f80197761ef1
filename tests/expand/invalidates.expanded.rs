use cached_runtime::{Cache, invalidates};
pub struct Users {
    cache: Cache,
}
#[derive(Debug)]
pub struct DbError;
impl Users {
    pub async fn move_user(&self, id: u64, team: u32) -> Result<(), DbError> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __keys = ::cached_runtime::__private::keys(
            __cache,
            &[(&["user:", ""], &[&id]), (&["team:", ":members"], &[&team])],
        );
        ::cached_runtime::__private::invalidate(
                __cache,
                __keys,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::move_user"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        0,
                        0,
                    );
                    &__POLICY
                },
                ::cached_runtime::__private::probe::<Result<(), DbError>>().shape(),
                async {
                    let __ret: Result<(), DbError> = {
                        let _ = (id, team);
                        Ok(())
                    };
                    __ret
                },
            )
            .await
    }
}
