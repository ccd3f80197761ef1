use cached_runtime::cache_aside;
pub async fn price(sku: &str, region: u16) -> Option<u64> {
    static __CACHED_RUNTIME_SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
        ::core::concat!(::core::module_path!(), "::price"),
        300,
        30,
    );
    let __cached_runtime_cache: ::cached_runtime::__private::CacheRef<'_> = &::cached_runtime::__private::Global;
    let __cached_runtime_key = ::cached_runtime::__private::key(
        __cached_runtime_cache,
        &[
            ::cached_runtime::__private::Seg::Lit("price:"),
            ::cached_runtime::__private::Seg::Arg(&sku),
            ::cached_runtime::__private::Seg::Lit(":"),
            ::cached_runtime::__private::Seg::Arg(&region),
        ],
    );
    ::cached_runtime::__private::cache_aside(
            __cached_runtime_cache,
            __cached_runtime_key,
            &__CACHED_RUNTIME_SITE,
            ::cached_runtime::__private::cacheable::<
                Option<u64>,
                _,
            >(::cached_runtime::__private::Probe::<Option<u64>>::new().shape()),
            async {
                let __cached_runtime_ret: Option<u64> = {
                    let _ = (sku, region);
                    Some(1999)
                };
                __cached_runtime_ret
            },
        )
        .await
}
