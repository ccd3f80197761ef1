use cached_runtime::{Cache, invalidates};
pub struct Users {
    cache: Cache,
}
#[derive(Debug)]
pub struct DbError;
impl Users {
    pub async fn move_user(&self, id: u64, team: u32) -> Result<(), DbError> {
        static __CACHED_RUNTIME_SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::move_user"),
            0,
            0,
        );
        let __cached_runtime_cache: ::cached_runtime::__private::CacheRef<'_> = &(self
            .cache);
        let __cached_runtime_keys = ::cached_runtime::__private::keys(
            __cached_runtime_cache,
            &[
                &[
                    ::cached_runtime::__private::Seg::Lit("user:"),
                    ::cached_runtime::__private::Seg::Arg(&id),
                ],
                &[
                    ::cached_runtime::__private::Seg::Lit("team:"),
                    ::cached_runtime::__private::Seg::Arg(&team),
                    ::cached_runtime::__private::Seg::Lit(":members"),
                ],
            ],
        );
        ::cached_runtime::__private::invalidate(
                __cached_runtime_cache,
                __cached_runtime_keys,
                &__CACHED_RUNTIME_SITE,
                ::cached_runtime::__private::Probe::<Result<(), DbError>>::new().shape(),
                async {
                    let __cached_runtime_ret: Result<(), DbError> = {
                        let _ = (id, team);
                        Ok(())
                    };
                    __cached_runtime_ret
                },
            )
            .await
    }
}
