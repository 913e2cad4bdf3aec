use super::*;

fn first_error(text: &str, names: &'static [&'static str]) -> DocError {
    let doc = parse(text).unwrap();
    let mut f = Fields::new(doc.get_ref(), names);
    loop {
        match f.next_field() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error in {text:?}"),
            Err(e) => return e,
        }
    }
}

#[test]
fn unknown_keys_are_named_with_serde_words_and_the_key_span() {
    let e = first_error("a = 1\nzz = 2\n", &["a", "b", "c"]);
    assert_eq!(
        e.message,
        "unknown field `zz`, expected one of `a`, `b`, `c`"
    );
    assert_eq!(e.span, Some(6..8));
    let e = first_error("x = 1", &["a", "b"]);
    assert_eq!(e.message, "unknown field `x`, expected `a` or `b`");
    let e = first_error("x = 1", &["a"]);
    assert_eq!(e.message, "unknown field `x`, expected `a`");
}

#[test]
fn values_convert_with_their_spans() {
    let doc = parse("a = [1, \"two\", 3.5, true, { k = 0x10 }]\n").unwrap();
    let v = doc.get_ref().get("a").unwrap();
    let arr = to_sp_array(v).unwrap();
    assert_eq!(arr.span(), 4..39);
    let items: Vec<&Value> = arr.get_ref().iter().map(|s| s.get_ref()).collect();
    assert_eq!(items[0], &Value::Integer(1));
    assert_eq!(items[1], &Value::String("two".into()));
    assert_eq!(items[2], &Value::Float(3.5));
    assert_eq!(items[3], &Value::Boolean(true));
    assert_eq!(items[4].get("k"), Some(&Value::Integer(16)));
    assert_eq!(arr.get_ref()[1].span(), 8..13);
}

#[test]
fn wrong_shapes_use_serde_unexpected_words() {
    let doc = parse("s = \"a\\\"b\"\ni = -5\nf = 2.0\nb = false\nt = {}\n").unwrap();
    let t = doc.get_ref();
    let get = |k: &str| t.get(k).unwrap();
    assert_eq!(
        to_sp_array(get("s")).unwrap_err().message,
        "invalid type: string \"a\\\"b\", expected a sequence"
    );
    assert_eq!(
        to_sp_table(get("i")).unwrap_err().message,
        "invalid type: integer `-5`, expected a map"
    );
    assert_eq!(
        to_string(get("f")).unwrap_err().message,
        "invalid type: floating point `2.0`, expected a string"
    );
    assert_eq!(
        to_sp_array(get("b")).unwrap_err().message,
        "invalid type: boolean `false`, expected a sequence"
    );
    assert_eq!(
        to_bool(get("t")).unwrap_err().message,
        "invalid type: map, expected a boolean"
    );
}

#[test]
fn integers_beyond_i64_are_refused() {
    let doc = parse("a = 18446744073709551615\nb = 99999999999999999999999\n").unwrap();
    let t = doc.get_ref();
    assert_eq!(
        to_sp(t.get("a").unwrap()).unwrap_err().message,
        "u64 value was too large"
    );
    assert_eq!(
        to_sp(t.get("b").unwrap()).unwrap_err().message,
        "integer number overflowed"
    );
}
