use cached_runtime::cache_aside;
pub async fn price(sku: &str, region: u16) -> Option<u64> {
    let __cache: ::cached_runtime::__private::CacheRef<'_> = &::cached_runtime::__private::Global;
    let __key = ::cached_runtime::__private::key(
        __cache,
        &["price:", ":", ""],
        &[&sku, &region],
    );
    ::cached_runtime::__private::cache_aside(
            __cache,
            __key,
            {
                static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                    ::core::concat!(::core::module_path!(), "::price"),
                );
                static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                    &__SITE,
                    300,
                    30,
                );
                &__POLICY
            },
            ::cached_runtime::__private::ops::<
                Option<u64>,
                _,
            >(
                ::cached_runtime::__private::probe::<Option<u64>>().shape(),
                ::cached_runtime::__private::probe::<Option<u64>>().sharing(),
            ),
            async {
                let __ret: Option<u64> = {
                    let _ = (sku, region);
                    Some(1999)
                };
                __ret
            },
        )
        .await
}
