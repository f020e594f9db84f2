//! The field names a `#[derive(Deserialize)]` struct takes, read from serde itself: the
//! derive hands them to `deserialize_struct`. Tests hold each request schema to them, so a
//! field added to an input type cannot be missing from the document.

use serde::de::{self, Deserializer, Visitor};

/// The fields of `T`, or `None` when `T` is not read as a struct (an enum, a map…).
pub fn of<T: de::DeserializeOwned>() -> Option<Vec<&'static str>> {
    let mut recorder = Recorder(None);
    let _ = T::deserialize(&mut recorder);
    recorder.0
}

struct Recorder(Option<Vec<&'static str>>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut Recorder {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(fields.to_vec());
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
