//! Reads TOML configuration through toml's own spanned parse tree (`DeTable`) instead of serde.
//!
//! `toml::from_str::<T>` compiles toml's value deserializer once per target type and per nested
//! type (the `deserialize_any`/`deserialize_option`/`Spanned` instances were ~100 KB of the binary,
//! docs/binary-size.md). The init's files are read by hand anyway (each key judged by its own
//! function, every error positioned), so serde only had to sort keys into fields and refuse unknown
//! ones. This module does that one job without generics: [`parse`] runs toml's parser, [`Fields`]
//! hands out the value of each known key in the file's key order and refuses the first unknown one,
//! and [`to_sp`] turns a parsed value into the `Spanned<toml::Value>` the field readers take.
//! Messages keep serde's words ("unknown field `x`, expected one of …", "invalid type: string
//! \"a\", expected a sequence") so that every existing message, test and document stays true.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::{Spanned, Value};

/// A structural error (unknown key, wrong type) at a byte span of the file, or a parse error.
#[derive(Debug)]
pub struct DocError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl DocError {
    fn at(span: Range<usize>, message: String) -> DocError {
        DocError {
            span: Some(span),
            message,
        }
    }
}

impl From<toml::de::Error> for DocError {
    fn from(e: toml::de::Error) -> DocError {
        DocError {
            span: e.span(),
            message: e.message().to_string(),
        }
    }
}

pub type DeSp<'i> = Spanned<DeValue<'i>>;

/// Parses a whole document: the root table with its span.
pub fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, toml::de::Error> {
    DeTable::parse(text)
}

/// How serde names a value it did not expect (`serde::de::Unexpected`'s Display), as toml's
/// deserializer reports it: a datetime is visited as a map.
pub fn unexpected(v: &DeValue) -> String {
    match v {
        DeValue::String(s) => format!("string {:?}", s.as_ref()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => format!("integer `{n}`"),
            Err(_) => format!("integer `{}`", i.as_str()),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) if x.fract() == 0.0 && x.is_finite() => format!("floating point `{x:.1}`"),
            Ok(x) => format!("floating point `{x}`"),
            Err(_) => format!("floating point `{}`", f.as_str()),
        },
        DeValue::Boolean(b) => format!("boolean `{b}`"),
        DeValue::Array(_) => "sequence".to_string(),
        DeValue::Table(_) | DeValue::Datetime(_) => "map".to_string(),
    }
}

/// serde's "invalid type" error at the value's span.
pub fn invalid_type(v: &DeSp, expected: &str) -> DocError {
    DocError::at(
        v.span(),
        format!(
            "invalid type: {}, expected {expected}",
            unexpected(v.get_ref())
        ),
    )
}

/// The table inside `v`, or serde's error naming `expected`.
pub fn table<'a, 'i>(v: &'a DeSp<'i>, expected: &str) -> Result<&'a DeTable<'i>, DocError> {
    match v.get_ref() {
        DeValue::Table(t) => Ok(t),
        _ => Err(invalid_type(v, expected)),
    }
}

/// The keys of one table, checked against a struct's field names in the file's key order, the
/// way serde's `deny_unknown_fields` walks them: the first unknown key ends the walk.
pub struct Fields<'a, 'i> {
    iter: toml::map::Iter<'a, Spanned<std::borrow::Cow<'i, str>>, DeSp<'i>>,
    names: &'static [&'static str],
}

impl<'a, 'i> Fields<'a, 'i> {
    pub fn new(table: &'a DeTable<'i>, names: &'static [&'static str]) -> Self {
        Fields {
            iter: table.iter(),
            names,
        }
    }

    /// The next (field index, value), `Ok(None)` at the end, or the unknown-field error.
    #[allow(clippy::type_complexity)]
    pub fn next_field(&mut self) -> Result<Option<(usize, &'a DeSp<'i>)>, DocError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        match self.names.iter().position(|n| *n == key.get_ref().as_ref()) {
            Some(i) => Ok(Some((i, value))),
            None => Err(DocError::at(
                key.span(),
                unknown_field(key.get_ref(), self.names),
            )),
        }
    }
}

/// serde's message for a key the struct does not have.
pub fn unknown_field(key: &str, names: &[&str]) -> String {
    let mut m = format!("unknown field `{key}`, ");
    match names {
        [] => m.push_str("there are no fields"),
        [a] => {
            let _ = write!(m, "expected `{a}`");
        }
        [a, b] => {
            let _ = write!(m, "expected `{a}` or `{b}`");
        }
        _ => {
            m.push_str("expected one of ");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    m.push_str(", ");
                }
                let _ = write!(m, "`{n}`");
            }
        }
    }
    m
}

/// serde's message for a required key that is absent.
pub fn missing_field(span: Range<usize>, name: &str) -> DocError {
    DocError::at(span, format!("missing field `{name}`"))
}

/// A parsed value as `toml::Value` with its span (what `Spanned<Value>` deserialised to).
pub fn to_sp(v: &DeSp) -> Result<Spanned<Value>, DocError> {
    Ok(Spanned::new(v.span(), to_value(v)?))
}

/// An array with a span on the array and on each element.
pub fn to_sp_array(v: &DeSp) -> Result<Spanned<Vec<Spanned<Value>>>, DocError> {
    match v.get_ref() {
        DeValue::Array(a) => {
            let items = a.iter().map(to_sp).collect::<Result<Vec<_>, _>>()?;
            Ok(Spanned::new(v.span(), items))
        }
        _ => Err(invalid_type(v, "a sequence")),
    }
}

/// A table with spans on the table, each key and each value.
#[allow(clippy::type_complexity)]
pub fn to_sp_table(
    v: &DeSp,
) -> Result<Spanned<BTreeMap<Spanned<String>, Spanned<Value>>>, DocError> {
    let t = table(v, "a map")?;
    let mut out = BTreeMap::new();
    for (k, item) in t.iter() {
        let key = Spanned::new(k.span(), k.get_ref().to_string());
        out.insert(key, to_sp(item)?);
    }
    Ok(Spanned::new(v.span(), out))
}

/// A string value.
pub fn to_string(v: &DeSp) -> Result<Spanned<String>, DocError> {
    string_as(v, "a string")
}

/// A string value, where serde's message names what it stands for ("path string" for a PathBuf).
pub fn string_as(v: &DeSp, expected: &str) -> Result<Spanned<String>, DocError> {
    match v.get_ref() {
        DeValue::String(s) => Ok(Spanned::new(v.span(), s.to_string())),
        _ => Err(invalid_type(v, expected)),
    }
}

/// A boolean value.
pub fn to_bool(v: &DeSp) -> Result<bool, DocError> {
    match v.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        _ => Err(invalid_type(v, "a boolean")),
    }
}

/// serde's u32: an integer in range, else its "invalid value"/"invalid type" message.
pub fn to_u32(v: &DeSp) -> Result<Spanned<u32>, DocError> {
    let bad = |kind: &str| DocError {
        span: Some(v.span()),
        message: format!("invalid {kind}: {}, expected u32", unexpected(v.get_ref())),
    };
    match v.get_ref() {
        DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Ok(Spanned::new(v.span(), n)),
            Err(_) => Err(bad("value")),
        },
        _ => Err(bad("type")),
    }
}

/// An array whose elements each go through `item`.
pub fn array_of<'a, 'i, T>(
    v: &'a DeSp<'i>,
    item: impl Fn(&'a DeSp<'i>) -> Result<T, DocError>,
) -> Result<Vec<T>, DocError> {
    match v.get_ref() {
        DeValue::Array(a) => a.iter().map(item).collect(),
        _ => Err(invalid_type(v, "a sequence")),
    }
}

fn to_value(v: &DeSp) -> Result<Value, DocError> {
    Ok(match v.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Integer(n),
            Err(_) if u64::from_str_radix(i.as_str(), i.radix()).is_ok() => {
                return Err(DocError::at(v.span(), "u64 value was too large".into()))
            }
            Err(_) => return Err(DocError::at(v.span(), "integer number overflowed".into())),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            // What toml's own `to_f64` accepts: infinity only when the file spelled `inf`.
            Ok(x) if !x.is_infinite() || f.as_str().contains("inf") => Value::Float(x),
            _ => {
                return Err(DocError::at(
                    v.span(),
                    "floating-point number overflowed".into(),
                ))
            }
        },
        DeValue::Boolean(b) => Value::Boolean(*b),
        DeValue::Datetime(d) => Value::Datetime(*d),
        DeValue::Array(a) => Value::Array(a.iter().map(to_value).collect::<Result<_, _>>()?),
        DeValue::Table(t) => {
            let mut m = toml::Table::new();
            for (k, item) in t.iter() {
                m.insert(k.get_ref().to_string(), to_value(item)?);
            }
            Value::Table(m)
        }
    })
}

#[cfg(test)]
#[path = "tomldoc_tests.rs"]
mod tests;
