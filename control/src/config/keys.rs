//! Every key the config file accepts, read from the serde structs themselves: a deserializer
//! that answers each struct with all of its fields (names as serde spells them, renames
//! included) and each leaf with a placeholder, recording the dotted path of every leaf
//! (`eal.main_cpu`, `service.real.weight`). docs/configuration.md is checked against it, so
//! the reference cannot drift from the code.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Dotted paths of every leaf key of the config file.
pub fn all_keys() -> BTreeSet<String> {
    let found = RefCell::new(BTreeSet::new());
    let _ = <super::file::ConfigFile as serde::Deserialize>::deserialize(Walker {
        path: String::new(),
        found: &found,
    });
    found.into_inner()
}

#[derive(Debug)]
struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Walker<'a> {
    path: String,
    found: &'a RefCell<BTreeSet<String>>,
}

impl Walker<'_> {
    fn leaf(&self) {
        self.found.borrow_mut().insert(self.path.clone());
    }
    fn same(&self) -> Self {
        Walker {
            path: self.path.clone(),
            found: self.found,
        }
    }
}

/// A struct's fields, one key at a time, each value walked at `path.field`.
struct Fields<'a> {
    walker: Walker<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de, 'a> MapAccess<'de> for Fields<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.next() {
            Some(f) => {
                self.current = f;
                seed.deserialize(f.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = if self.walker.path.is_empty() {
            self.current.to_string()
        } else {
            format!("{}.{}", self.walker.path, self.current)
        };
        seed.deserialize(Walker {
            path,
            found: self.walker.found,
        })
    }
}

/// `n` elements, each walked at the same path (a list's elements share their key).
struct Elements<'a> {
    walker: Walker<'a>,
    left: usize,
}

impl<'de, 'a> SeqAccess<'de> for Elements<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.walker.same()).map(Some)
    }
}

/// A map with free keys (`[forward]`): a leaf, given no entries.
struct NoEntries;

impl<'de> MapAccess<'de> for NoEntries {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, Error> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _seed: V) -> Result<V::Value, Error> {
        Err(Error("no value".into()))
    }
}

macro_rules! numbers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_u64(0)
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for Walker<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error(format!(
            "{}: a type the key walker does not know",
            self.path
        )))
    }
    numbers!(
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64
    );
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_f64(0.0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_f64(0.0)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_bool(false)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements {
            walker: self,
            left: 1,
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Elements {
            walker: self,
            left: len,
        })
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf();
        visitor.visit_map(NoEntries)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields {
            walker: self,
            fields: fields.iter(),
            current: "",
        })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct newtype_struct tuple_struct enum
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walker_finds_nested_renamed_and_map_keys() {
        let keys = all_keys();
        for k in [
            "eal.main_cpu",
            "port.name",
            "service.real.weight",
            "session.local_port_range",
            "forward",
            "metrics.listen",
        ] {
            assert!(keys.contains(k), "{k} not in {keys:?}");
        }
        assert!(!keys.contains("service.reals"), "serde's rename is used");
    }

    /// docs/configuration.md has a row `| \`KEY\` | …` for every key, and no other.
    #[test]
    fn the_configuration_reference_matches_the_structs() {
        let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let doc = std::fs::read_to_string(doc_path).expect("docs/configuration.md");
        let documented: BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
            .collect();
        let example = doc
            .split_once("```toml\n")
            .and_then(|(_, rest)| rest.split_once("```"))
            .expect("an example in a toml block")
            .0;
        if let Err(e) = crate::config::AppConfig::parse(std::path::Path::new(doc_path), example) {
            panic!("the example in docs/configuration.md is refused: {e}");
        }
        let code = all_keys();
        let undocumented: Vec<&String> = code.difference(&documented).collect();
        let unknown: Vec<&String> = documented.difference(&code).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "docs/configuration.md drifted from control/src/config/file.rs:\n  \
             keys in the code but not in the reference: {undocumented:?}\n  \
             keys in the reference but not in the code: {unknown:?}"
        );
    }
}
