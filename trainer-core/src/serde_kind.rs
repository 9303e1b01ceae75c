//! `kind = "..."` tables that may also be written as a bare string: `schedule = "cosine"` reads
//! as `schedule = { kind = "cosine" }`, so a variant without parameters needs no table.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, value::MapAccessDeserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Deserializes an internally tagged (`kind`) enum from its table or from its bare kind name.
pub fn kind_or_table<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct KindOrTable<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for KindOrTable<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a kind name or a table with `kind`")
        }

        fn visit_str<E: de::Error>(self, kind: &str) -> Result<T, E> {
            // The derived tagged impl sees `{ kind = "..." }`: unknown kinds and missing
            // required parameters get its usual messages.
            let map = de::value::MapDeserializer::<_, E>::new(std::iter::once((
                "kind",
                kind.to_string().into_deserializer(),
            )));
            T::deserialize(map)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_any(KindOrTable(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
    enum Shape {
        Dot {},
        Circle {
            #[serde(default)]
            r: f64,
        },
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::kind_or_table")]
        shape: Shape,
    }

    fn parse(text: &str) -> Result<Shape, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.shape)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn string_and_table_forms_agree() {
        assert_eq!(parse("shape = \"dot\"").unwrap(), Shape::Dot {});
        assert_eq!(
            parse("shape = \"circle\"").unwrap(),
            Shape::Circle { r: 0.0 }
        );
        assert_eq!(
            parse("shape = { kind = \"circle\", r = 2.0 }").unwrap(),
            Shape::Circle { r: 2.0 }
        );
    }

    #[test]
    fn unknown_kinds_fields_and_types_are_refused() {
        let e = parse("shape = \"square\"").unwrap_err();
        assert!(e.contains("unknown variant `square`"), "{e}");
        let e = parse("shape = { kind = \"dot\", r = 1.0 }").unwrap_err();
        assert!(e.contains("unknown field `r`"), "{e}");
        let e = parse("shape = 3").unwrap_err();
        assert!(e.contains("a kind name or a table"), "{e}");
    }
}
