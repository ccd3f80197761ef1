use cached_runtime::{cache_aside, invalidates, Cache};
struct Catalog {
    cache: Cache,
}
impl Catalog {
    async fn product(&self, id: u64, category: u32) -> Option<String> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(__cache, &["product:", ""], &[&id]);
        let __tags = ::cached_runtime::__private::tags(
            __cache,
            &[(&["category:", ""], &[&category]), (&["products"], &[])],
        );
        ::cached_runtime::__private::cache_aside_tagged(
                __cache,
                __key,
                __tags,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::product"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        0,
                    );
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
                    let __ret: Option<String> = {
                        let _ = category;
                        Some(id.to_string())
                    };
                    __ret
                },
            )
            .await
    }
    async fn set_price(
        &self,
        id: u64,
        category: u32,
        price: u64,
    ) -> Result<(), std::io::Error> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __keys = ::cached_runtime::__private::keys(
            __cache,
            &[(&["product:", ""], &[&id])],
        );
        let __tags = ::cached_runtime::__private::tags(
            __cache,
            &[(&["category:", ""], &[&category])],
        );
        ::cached_runtime::__private::invalidate_tagged(
                __cache,
                __keys,
                __tags,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::set_price"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        0,
                        0,
                    );
                    &__POLICY
                },
                ::cached_runtime::__private::probe::<Result<(), std::io::Error>>()
                    .shape(),
                async {
                    let __ret: Result<(), std::io::Error> = {
                        let _ = (id, category, price);
                        Ok(())
                    };
                    __ret
                },
            )
            .await
    }
}
