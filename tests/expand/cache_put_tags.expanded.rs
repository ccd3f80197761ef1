use cached_runtime::{Cache, cache_put};
pub struct Catalog {
    cache: Cache,
}
impl Catalog {
    pub async fn save(&self, id: u64, category: u32, price: u64) -> Option<u64> {
        let __cache: ::cached_runtime::__private::CacheRef<'_> = &(self.cache);
        let __key = ::cached_runtime::__private::key(__cache, &["product:", ""], &[&id]);
        let __tags = ::cached_runtime::__private::tags(
            __cache,
            &[(&["category:", ""], &[&category]), (&["products"], &[])],
        );
        ::cached_runtime::__private::cache_put_tagged(
                __cache,
                __key,
                __tags,
                {
                    static __SITE: ::cached_runtime::__private::Site = ::cached_runtime::__private::Site::new(
                        ::core::concat!(::core::module_path!(), "::save"),
                    );
                    static __POLICY: ::cached_runtime::__private::Policy = ::cached_runtime::__private::Policy::new(
                        &__SITE,
                        600,
                        0,
                    );
                    &__POLICY
                },
                ::cached_runtime::__private::put_ops::<
                    Option<u64>,
                    _,
                >(::cached_runtime::__private::probe::<Option<u64>>().shape()),
                async {
                    let __ret: Option<u64> = {
                        let _ = (id, category);
                        Some(price)
                    };
                    __ret
                },
            )
            .await
    }
}
