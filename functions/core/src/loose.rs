//! Reading a provider's JSON straight into typed structs, as leniently as reading it from a `serde_json::Value`
//! did, without building the tree: a field of another JSON type than expected reads as "not there" instead of
//! failing the whole message, and everything not named is skipped as it is read.
//!
//! A struct read this way has only `Loose` fields (`Loose<Value>` for what is kept whole) and is made
//! readable with [`loose_struct!`]. The one thing that still fails is a struct's key given twice; serde reports it
//! as a data error, and the caller decides what that means (e.g. `vapi::parse_message`).

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// One field: missing, present with another JSON type (including `null`), or what was wanted.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Loose<T> {
    #[default]
    Absent,
    Other,
    Is(T),
}

impl<T> Loose<T> {
    /// What `Value::get(key).and_then(Value::as_...)` gave: the value if it is of the wanted type.
    pub fn get(self) -> Option<T> {
        match self {
            Loose::Is(value) => Some(value),
            Loose::Absent | Loose::Other => None,
        }
    }

    pub fn as_ref(&self) -> Loose<&T> {
        match self {
            Loose::Absent => Loose::Absent,
            Loose::Other => Loose::Other,
            Loose::Is(value) => Loose::Is(value),
        }
    }

    pub fn is_present(&self) -> bool {
        !matches!(self, Loose::Absent)
    }
}

/// Which JSON values a type reads; everything else is consumed and becomes [`Loose::Other`].
pub trait Kind: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Kind for String {
    fn from_str(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl Kind for f64 {
    fn from_f64(number: f64) -> Option<Self> {
        Some(number)
    }
}

/// A scalar as text (`Value::to_string` of a number or a boolean), as a provider's free-form verdicts come.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarText(pub String);

impl Kind for ScalarText {
    fn from_str(text: &str) -> Option<Self> {
        Some(ScalarText(text.to_owned()))
    }
    fn from_f64(number: f64) -> Option<Self> {
        Some(ScalarText(serde_json::Value::from(number).to_string()))
    }
    fn from_bool(value: bool) -> Option<Self> {
        Some(ScalarText(value.to_string()))
    }
}

/// Any JSON value but `null`, kept whole (what the caller stores or reads further as it is).
impl Kind for serde_json::Value {
    fn from_str(text: &str) -> Option<Self> {
        Some(text.into())
    }
    fn from_f64(number: f64) -> Option<Self> {
        Some(number.into())
    }
    fn from_bool(value: bool) -> Option<Self> {
        Some(value.into())
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        Deserialize::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        Deserialize::deserialize(SeqAccessDeserializer::new(seq)).map(Some)
    }
}

impl<T: Kind> Kind for Vec<Loose<T>> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

/// An object of any keys (in key order, as `serde_json::Map` keeps them).
impl<T: Kind> Kind for BTreeMap<String, Loose<T>> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry()? {
            entries.insert(key, value); // the last of a repeated key wins, as in a `Value`
        }
        Ok(Some(entries))
    }
}

/// Makes a `#[derive(Deserialize)]` struct of loose fields readable as a [`Loose`] object.
#[macro_export]
macro_rules! loose_struct {
    ($($name:ty),+ $(,)?) => {$(
        impl $crate::loose::Kind for $name {
            fn from_map<'de, A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                <$name as serde::Deserialize>::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
    )+};
}

impl<'de, T: Kind> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor(PhantomData))
    }
}

struct LooseVisitor<T>(PhantomData<T>);

fn loose<T>(value: Option<T>) -> Loose<T> {
    value.map_or(Loose::Other, Loose::Is)
}

impl<'de, T: Kind> Visitor<'de> for LooseVisitor<T> {
    type Value = Loose<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(loose(T::from_bool(value)))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(loose(T::from_f64(value as f64)))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(loose(T::from_f64(value as f64)))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(loose(T::from_f64(value)))
    }
    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(loose(T::from_str(value)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map).map(loose)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::from_seq(seq).map(loose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Inner {
        name: Loose<String>,
        count: Loose<f64>,
    }
    loose_struct!(Inner);

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Outer {
        inner: Loose<Inner>,
        list: Loose<Vec<Loose<String>>>,
        verdict: Loose<ScalarText>,
    }

    fn outer(json: &str) -> Outer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fields_of_the_wanted_type_are_read() {
        let read = outer(r#"{"inner":{"name":"a","count":3,"skip":[1,{"x":2}]},"list":["x",1,"y"],"verdict":true}"#);
        let inner = read.inner.get().unwrap();
        assert_eq!(inner.name.get().as_deref(), Some("a"));
        assert_eq!(inner.count.get(), Some(3.0));
        let list: Vec<_> = read.list.get().unwrap().into_iter().map(Loose::get).collect();
        assert_eq!(list, [Some("x".to_owned()), None, Some("y".to_owned())]);
        assert_eq!(read.verdict.get(), Some(ScalarText("true".into())));
        assert_eq!(outer(r#"{"verdict":2.5}"#).verdict.get(), Some(ScalarText("2.5".into())));
    }

    #[test]
    fn another_type_is_other_and_a_missing_field_is_absent() {
        for json in [r#"{"inner":5}"#, r#"{"inner":"x"}"#, r#"{"inner":null}"#, r#"{"inner":[{"name":"a"}]}"#] {
            assert!(matches!(outer(json).inner, Loose::Other), "{json}");
        }
        let read = outer(r#"{"inner":{"name":{"deep":[1,2]},"count":"7"},"list":{"a":1},"verdict":{}}"#);
        let inner = read.inner.get().unwrap();
        assert!(matches!(inner.name, Loose::Other));
        assert!(matches!(inner.count, Loose::Other));
        assert!(matches!(read.list, Loose::Other));
        assert!(matches!(read.verdict, Loose::Other));
        assert!(matches!(outer("{}").inner, Loose::Absent));
    }

    #[test]
    fn a_struct_key_given_twice_is_a_data_error() {
        let error = serde_json::from_str::<Outer>(r#"{"inner":{"name":"a","name":"b"}}"#).unwrap_err();
        assert!(error.is_data(), "{error}");
    }
}
