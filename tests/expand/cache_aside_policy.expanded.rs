use cached_runtime::{Cache, cache_aside};
#[derive(Debug)]
pub struct Unavailable;
/// Refreshes run in the background, so the client is `Clone` and the arguments are owned.
#[derive(Clone)]
pub struct RatesApi {
    pub cache: Cache,
    pub base_url: String,
}
impl RatesApi {
    /// Hot and important: served stale while refreshing, refreshed early, and kept for an
    /// hour to stand in for a failing source.
    pub async fn rates(
        &self,
        currency: String,
    ) -> Result<Vec<(String, f64)>, Unavailable> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(
            __cache,
            &["rates:", ""],
            &[&currency],
        );
        ::cached_runtime::__private::cache_aside(
                __cache,
                __key,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::rates"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                            &__SITE,
                            60,
                            0,
                        )
                        .stale(30)
                        .fail_safe(3600)
                        .early_refresh(1.0);
                    &__POLICY
                },
                ::cached_runtime::__private::ops::<
                    Result<Vec<(String, f64)>, Unavailable>,
                    _,
                >(
                    ::cached_runtime::__private::probe::<
                        Result<Vec<(String, f64)>, Unavailable>,
                    >()
                        .shape(),
                    ::cached_runtime::__private::probe::<
                        Result<Vec<(String, f64)>, Unavailable>,
                    >()
                        .sharing(),
                ),
                ::cached_runtime::__private::Detached(|| {
                    let __this = ::cached_runtime::__private::owned::<Self>(self);
                    let mut currency = ::cached_runtime::__private::owned(&currency);
                    async move {
                        let __self = &__this;
                        let __ret: Result<Vec<(String, f64)>, Unavailable> = {
                            currency.make_ascii_uppercase();
                            let _ = (&__self.base_url, self::Unavailable);
                            Ok(vec![(currency, 1.0)])
                        };
                        __ret
                    }
                }),
            )
            .await
    }
}
pub async fn report(day: u32) -> String {
    let __cache: ::cached_runtime::__private::CacheRef<'_> = &::cached_runtime::__private::Global;
    let __key = ::cached_runtime::__private::key(__cache, &["report:", ""], &[&day]);
    ::cached_runtime::__private::cache_aside(
            __cache,
            __key,
            {
                static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                    ::core::concat!(::core::module_path!(), "::report"),
                );
                static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        0,
                    )
                    .without_lock();
                &__POLICY
            },
            ::cached_runtime::__private::ops::<
                String,
                _,
            >(
                ::cached_runtime::__private::probe::<String>().shape(),
                ::cached_runtime::__private::probe::<String>().sharing(),
            ),
            async {
                let __ret: String = { format!("report {day}") };
                __ret
            },
        )
        .await
}
