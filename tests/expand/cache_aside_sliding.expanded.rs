use cached_runtime::{Cache, cache_aside};
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub user: u64,
}
pub struct Sessions {
    pub cache: Cache,
}
impl Sessions {
    /// Stays cached while it is used: every hit resets its TTL to 30 minutes.
    pub async fn session(&self, token: &str) -> Option<Session> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(
            __cache,
            &["session:", ""],
            &[&token],
        );
        ::cached_runtime::__private::cache_aside(
                __cache,
                __key,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::session"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                            &__SITE,
                            1800,
                            0,
                        )
                        .sliding();
                    &__POLICY
                },
                ::cached_runtime::__private::ops::<
                    Option<Session>,
                    _,
                >(
                    ::cached_runtime::__private::probe::<Option<Session>>().shape(),
                    ::cached_runtime::__private::probe::<Option<Session>>().sharing(),
                ),
                async {
                    let __ret: Option<Session> = {
                        let _ = token;
                        None
                    };
                    __ret
                },
            )
            .await
    }
}
pub async fn profile(id: u64) -> Option<String> {
    let __cache: ::cached_runtime::__private::CacheRef<'_> = &::cached_runtime::__private::Global;
    let __key = ::cached_runtime::__private::key(__cache, &["profile:", ""], &[&id]);
    ::cached_runtime::__private::cache_aside(
            __cache,
            __key,
            {
                static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                    ::core::concat!(::core::module_path!(), "::profile"),
                );
                static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        30,
                    )
                    .without_lock()
                    .sliding();
                &__POLICY
            },
            ::cached_runtime::__private::ops::<
                Option<String>,
                _,
            >(
                ::cached_runtime::__private::probe::<Option<String>>().shape(),
                ::cached_runtime::__private::probe::<Option<String>>().sharing(),
            ),
            async {
                let __ret: Option<String> = { Some(format!("user {id}")) };
                __ret
            },
        )
        .await
}
