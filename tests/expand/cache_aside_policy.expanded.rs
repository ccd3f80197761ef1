use cached_runtime::cache_aside;
#[derive(Debug)]
pub struct Unavailable;
/// Hot and important: served stale while refreshing, refreshed early, and kept for an hour
/// to stand in for a failing source.
pub async fn rates(currency: &str) -> Result<Vec<(String, f64)>, Unavailable> {
    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::rates"),
            60,
            0,
        )
        .stale(30)
        .fail_safe(3600)
        .early_refresh(1.0);
    let __cache = &::cached_runtime::__private::Global;
    let __key = ::cached_runtime::__private::key(
        __cache,
        &[
            ::cached_runtime::__private::Seg::Lit("rates:"),
            ::cached_runtime::__private::Seg::Arg(&currency),
        ],
    );
    ::cached_runtime::__private::cache_aside(
            __cache,
            __key,
            &__SITE,
            ::cached_runtime::__private::cacheable::<
                Result<Vec<(String, f64)>, Unavailable>,
                _,
            >(
                ::cached_runtime::__private::Probe::<
                    Result<Vec<(String, f64)>, Unavailable>,
                >::new()
                    .shape(),
            ),
            async {
                let _ = currency;
                Ok(vec![])
            },
        )
        .await
}
pub async fn report(day: u32) -> String {
    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
            ::core::concat!(::core::module_path!(), "::report"),
            600,
            0,
        )
        .without_lock();
    let __cache = &::cached_runtime::__private::Global;
    let __key = ::cached_runtime::__private::key(
        __cache,
        &[
            ::cached_runtime::__private::Seg::Lit("report:"),
            ::cached_runtime::__private::Seg::Arg(&day),
        ],
    );
    ::cached_runtime::__private::cache_aside(
            __cache,
            __key,
            &__SITE,
            ::cached_runtime::__private::cacheable::<
                String,
                _,
            >(::cached_runtime::__private::Probe::<String>::new().shape()),
            async { format!("report {day}") },
        )
        .await
}
