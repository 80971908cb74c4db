//! The canonical event's field types as serde reads them: strings that
//! borrow unless escaped, times, integers, and a type-checked `fields` array.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use tripline_engine::time::parse_rfc3339;

/// A string that borrows from the input unless it contains escapes.
#[derive(Debug)]
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `ts`: RFC 3339 string or integer epoch milliseconds, parsed in place.
pub(super) struct Ts(pub(super) i64);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                i64::try_from(v)
                    .map(Ts)
                    .map_err(|_| E::custom("ts out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                Ok(Ts(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                parse_rfc3339(v)
                    .map(Ts)
                    .ok_or_else(|| E::custom("ts is not RFC 3339"))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer field (`status`, `records`, `bytes`). Beyond the integers the
/// spec names, an integral float (`100.0`, as a producer that keeps every
/// number as a double writes it) is the same integer; a fraction, a sign
/// where none fits, or a value out of the type's range is refused.
pub(super) struct Int<T>(pub(super) T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: TryFrom<u64>> Visitor<'_> for V<T> {
            type Value = Int<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int<T>, E> {
                T::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom(format_args!("{v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int<T>, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format_args!("{v} is negative")))
                    .and_then(|u| self.visit_u64(u))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int<T>, E> {
                // 2^53: beyond it a double no longer holds every integer.
                if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    self.visit_u64(v as u64)
                } else {
                    Err(E::custom(format_args!("{v} is not a non-negative integer")))
                }
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `fields`: must be an array of strings; the content is not used, so it is
/// type-checked without allocating.
pub(super) struct StrArray;

impl<'de> Deserialize<'de> for StrArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrArray, A::Error> {
                while seq.next_element::<Str<'_>>()?.is_some() {}
                Ok(StrArray)
            }
        }
        d.deserialize_seq(V)
    }
}
