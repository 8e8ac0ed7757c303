//! The operations of the graph language's expressions over JSON values, as generated code
//! calls them. Each follows the checker's typing: numbers mix as in the language (an int stays
//! an int until a float joins), `+` joins strings, and anything the checker could not prove
//! is checked here, failing the step with a message rather than guessing.

use crate::error::StepError;
use serde_json::{Number, Value};

/// `value.name`: read in place, `null` when missing.
pub fn field<'v>(value: &'v Value, name: &str) -> &'v Value {
    value.get(name).unwrap_or(&NULL)
}

/// `value[index]` for arrays (by integer) and objects (by string), read in place; `null` when
/// missing.
pub fn index<'v>(value: &'v Value, index: &Value) -> &'v Value {
    let found = match (value, index) {
        (Value::Array(items), Value::Number(n)) => n.as_u64().and_then(|i| items.get(usize::try_from(i).ok()?)),
        (Value::Object(fields), Value::String(key)) => fields.get(key),
        _ => None,
    };
    found.unwrap_or(&NULL)
}

/// What a missing field or element reads as.
static NULL: Value = Value::Null;

/// `len(value)` for strings (characters), arrays and objects.
pub fn len(value: &Value) -> Result<Value, StepError> {
    match value {
        Value::String(s) => Ok(Value::from(s.chars().count())),
        Value::Array(items) => Ok(Value::from(items.len())),
        Value::Object(fields) => Ok(Value::from(fields.len())),
        other => Err(StepError::invalid_input(format!("len() takes a string, array or object, not {}", kind(other)))),
    }
}

/// A condition's value: only booleans are conditions.
pub fn truth(value: &Value) -> Result<bool, StepError> {
    value.as_bool().ok_or_else(|| StepError::invalid_input(format!("a condition is {}, not a bool", kind(value))))
}

/// `-value`
pub fn neg(value: &Value) -> Result<Value, StepError> {
    match value.as_i64() {
        Some(i) => i.checked_neg().map(Value::from).ok_or_else(|| StepError::invalid_input("integer overflow")),
        None => number(value).map(|f| float(-f)),
    }
}

/// The arithmetic operators: `+ - * / %`.
pub fn arithmetic(op: char, left: &Value, right: &Value) -> Result<Value, StepError> {
    if op == '+'
        && let (Value::String(a), Value::String(b)) = (left, right)
    {
        return Ok(Value::String(format!("{a}{b}")));
    }
    if let (Some(a), Some(b)) = (left.as_i64(), right.as_i64()) {
        let result = match op {
            '+' => a.checked_add(b),
            '-' => a.checked_sub(b),
            '*' => a.checked_mul(b),
            '/' if b == 0 => return Err(StepError::invalid_input("division by zero")),
            '/' => a.checked_div(b),
            '%' if b == 0 => return Err(StepError::invalid_input("division by zero")),
            _ => a.checked_rem(b),
        };
        return result.map(Value::from).ok_or_else(|| StepError::invalid_input("integer overflow"));
    }
    let (a, b) = (number(left)?, number(right)?);
    Ok(float(match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' => a / b,
        _ => a % b,
    }))
}

/// `==` and `!=`: numbers compare by value (`1 == 1.0`), everything else structurally.
pub fn equal(left: &Value, right: &Value) -> bool {
    match (left.as_f64(), right.as_f64()) {
        (Some(a), Some(b)) if left.is_number() && right.is_number() => a == b,
        _ => left == right,
    }
}

/// `< <= > >=` over numbers or over strings.
pub fn compare(op: &str, left: &Value, right: &Value) -> Result<bool, StepError> {
    let ordering = match (left, right) {
        (Value::String(a), Value::String(b)) => a.cmp(b),
        _ => {
            number(left)?.partial_cmp(&number(right)?).ok_or_else(|| StepError::invalid_input("cannot compare NaN"))?
        }
    };
    Ok(match op {
        "<" => ordering.is_lt(),
        "<=" => ordering.is_le(),
        ">" => ordering.is_gt(),
        _ => ordering.is_ge(),
    })
}

fn number(value: &Value) -> Result<f64, StepError> {
    value.as_f64().ok_or_else(|| StepError::invalid_input(format!("expected a number, found {}", kind(value))))
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
