use cached_runtime::{Cache, invalidates};
pub struct Users {
    cache: Cache,
}
#[derive(Debug)]
pub struct DbError;
impl Users {
    pub async fn move_user(&self, id: u64, team: u32) -> Result<(), DbError> {
        static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::move_user"),
            0,
            0,
        );
        let __cache = &(self.cache);
        let __keys = ::cached_runtime::__private::keys(
            __cache,
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
                __cache,
                __keys,
                &__SITE,
                ::cached_runtime::__private::Probe::<Result<(), DbError>>::new().shape(),
                async {
                    let _ = (id, team);
                    Ok(())
                },
            )
            .await
    }
}
