//! The serde visits that the JSON feed reader and the push decoder share: most of their visitors
//! treat every scalar (a boolean, a number, a string) one way and null another, and this writes
//! those nine methods once.

/// Writes a serde `Visitor`'s visits of booleans, numbers and strings as `self.$scalar()` and of
/// null (unit and none) as `self.$null()`; both are methods `fn<E>(self) -> Result<Self::Value, E>`.
macro_rules! scalar_visits {
    ($scalar:ident, $null:ident) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_i128<E>(self, _: i128) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_u128<E>(self, _: u128) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            self.$null()
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            self.$null()
        }
    };
}

pub(crate) use scalar_visits;
