//! Arithmetic expressions in scenario files.
//!
//! Papers fix ratios, not numbers (Omega = 0.75 Omega_c, gamma_1D = 15.5/(N-1)), so any model
//! parameter, variable or numeric task field may be a string expression of the model
//! parameters and the scenario's named variables, e.g. `"N/2 * sqrt(Gamma^2 + 4*chi^2)"`.
//! Parsing and evaluation use the maintained `evalexpr` crate. Two adaptations:
//! - evalexpr divides integers as integers (`1/2 == 0`); a physicist writing `N/2` or
//!   `1/2` means real division, so integer literals are rewritten as floats before parsing
//!   and every value in scope is a float.
//! - functions are available under their plain names (`sqrt`, `exp`, `ln`, `sin`, ...) and
//!   `pi` is a constant, in addition to evalexpr's own `math::` names.

use crate::error::InputError;
use evalexpr::{
    ContextWithMutableFunctions, ContextWithMutableVariables, DefaultNumericTypes, Function, HashMapContext,
    Node, Value,
};

/// A parsed expression with the names it refers to.
pub struct Expr {
    text: String,
    node: Node<DefaultNumericTypes>,
}

impl Expr {
    /// Parse `text`; `field` names the scenario key for error messages. Texts longer than
    /// [`MAX_EXPR_LEN`] or nested deeper than [`MAX_EXPR_DEPTH`] are refused before evalexpr
    /// sees them (its parser and evaluator recurse, so a deep nesting overflows the stack).
    pub fn parse(field: &str, text: &str) -> Result<Expr, InputError> {
        check_size(field, text)?;
        let node =
            evalexpr::build_operator_tree::<DefaultNumericTypes>(&floatify_literals(text)).map_err(|e| {
                InputError::Expression {
                    field: field.to_string(),
                    text: text.to_string(),
                    message: e.to_string(),
                }
            })?;
        Ok(Expr {
            text: text.to_string(),
            node,
        })
    }

    /// Variable names used by the expression (excluding the built-in constant `pi`).
    pub fn identifiers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .node
            .iter_variable_identifiers()
            .filter(|s| *s != "pi")
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate with the given (name, value) scope.
    pub fn eval(&self, field: &str, scope: &Scope) -> Result<f64, InputError> {
        let err = |message: String| InputError::Expression {
            field: field.to_string(),
            text: self.text.clone(),
            message,
        };
        let v = self
            .node
            .eval_number_with_context(&scope.ctx)
            .map_err(|e| err(e.to_string()))?;
        if !v.is_finite() {
            return Err(err(format!("evaluates to {v}, expected a finite number")));
        }
        Ok(v)
    }
}

/// Longest expression text accepted, characters (a formula from a paper is far shorter).
pub const MAX_EXPR_LEN: usize = 1000;
/// Deepest nesting of parentheses accepted in an expression.
pub const MAX_EXPR_DEPTH: usize = 32;

/// Refuse a text over [`MAX_EXPR_LEN`] characters or with parentheses nested deeper than
/// [`MAX_EXPR_DEPTH`].
fn check_size(field: &str, text: &str) -> Result<(), InputError> {
    let len = text.chars().count();
    let shown = || {
        let head: String = text.chars().take(40).collect();
        format!("\"{head}...\" ({len} characters)")
    };
    if len > MAX_EXPR_LEN {
        return Err(InputError::invalid(
            field,
            shown(),
            format!("an expression of at most {MAX_EXPR_LEN} characters"),
        ));
    }
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_EXPR_DEPTH {
        return Err(InputError::invalid(
            field,
            shown(),
            format!("an expression with parentheses nested at most {MAX_EXPR_DEPTH} deep (found {max})"),
        ));
    }
    Ok(())
}

/// Values known so far, as an evalexpr context with the plain-named math functions.
pub struct Scope {
    ctx: HashMapContext<DefaultNumericTypes>,
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

impl Scope {
    pub fn new() -> Scope {
        let mut ctx = HashMapContext::<DefaultNumericTypes>::new();
        type F = fn(f64) -> f64;
        let funcs: [(&str, F); 16] = [
            ("sqrt", f64::sqrt),
            ("exp", f64::exp),
            ("ln", f64::ln),
            ("log10", f64::log10),
            ("sin", f64::sin),
            ("cos", f64::cos),
            ("tan", f64::tan),
            ("asin", f64::asin),
            ("acos", f64::acos),
            ("atan", f64::atan),
            ("sinh", f64::sinh),
            ("cosh", f64::cosh),
            ("tanh", f64::tanh),
            ("abs", f64::abs),
            ("floor", f64::floor),
            ("ceil", f64::ceil),
        ];
        for (name, f) in funcs {
            // Setting a function on a fresh HashMapContext cannot fail.
            let _ = ctx.set_function(
                name.to_string(),
                Function::new(move |arg: &Value<DefaultNumericTypes>| {
                    let x = arg.as_number()?;
                    Ok(Value::Float(f(x)))
                }),
            );
        }
        let _ = ctx.set_value("pi".to_string(), Value::Float(std::f64::consts::PI));
        Scope { ctx }
    }

    pub fn set(&mut self, name: &str, v: f64) {
        // set_value only fails when the type of an existing value changes; all are floats.
        let _ = self.ctx.set_value(name.to_string(), Value::Float(v));
    }
}

/// Rewrite integer literals (`2`, `15`) as float literals (`2.0`) so evalexpr divides them as
/// reals. Digits inside identifiers (`x2`, `chi_z2`) and existing floats (`1.5`, `1e-3`) are
/// left alone.
pub fn floatify_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_is_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !(c.is_ascii_digit() || c == '.') || prev_is_ident {
            out.push(c);
            i += 1;
            continue;
        }
        // A numeric literal: digits [. digits] [(e|E) [+|-] digits].
        let start = i;
        let mut is_float = false;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '.' {
            is_float = true;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
            let mut k = i + 1;
            if k < chars.len() && (chars[k] == '+' || chars[k] == '-') {
                k += 1;
            }
            if k < chars.len() && chars[k].is_ascii_digit() {
                is_float = true;
                i = k;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        out.extend(&chars[start..i]);
        if !is_float {
            out.push_str(".0");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_literals_become_floats() {
        assert_eq!(floatify_literals("N/2"), "N/2.0");
        assert_eq!(
            floatify_literals("1/2 + x2*3.5 - 1e-3"),
            "1.0/2.0 + x2*3.5 - 1e-3"
        );
        assert_eq!(floatify_literals("chi_z2^2"), "chi_z2^2.0");
    }

    #[test]
    fn evaluates_with_scope_and_functions() {
        let mut s = Scope::new();
        s.set("N", 200.0);
        s.set("Gamma", 1.0);
        s.set("chi", 0.9375);
        let e = Expr::parse("Omega_c", "N/2 * sqrt(Gamma^2 + 4*chi^2)").unwrap();
        assert_eq!(e.identifiers(), vec!["Gamma", "N", "chi"]);
        let v = e.eval("Omega_c", &s).unwrap();
        assert!((v - 100.0 * (1.0f64 + 4.0 * 0.9375 * 0.9375).sqrt()).abs() < 1e-12);
        let half = Expr::parse("h", "1/2").unwrap().eval("h", &s).unwrap();
        assert_eq!(half, 0.5);
        let p = Expr::parse("p", "cos(pi)").unwrap().eval("p", &s).unwrap();
        assert_eq!(p, -1.0);
    }

    #[test]
    fn long_or_deep_expressions_are_refused_and_the_limits_evaluate() {
        let deep = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
        let e = Expr::parse("model.Omega", &deep).err().unwrap().to_string();
        assert!(
            e.contains("model.Omega") && e.contains("at most 1000 characters"),
            "{e}"
        );
        let nested = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        let e = Expr::parse("model.Omega", &nested).err().unwrap().to_string();
        assert!(
            e.contains("model.Omega") && e.contains("nested at most 32 deep (found 40)"),
            "{e}"
        );
        // What the limits let through evaluates on a test thread's small stack.
        let s = Scope::new();
        let at_depth = format!("{}1{}", "(".repeat(MAX_EXPR_DEPTH), ")".repeat(MAX_EXPR_DEPTH));
        assert_eq!(Expr::parse("a", &at_depth).unwrap().eval("a", &s).unwrap(), 1.0);
        let chain = format!("{}1", "1+".repeat(MAX_EXPR_LEN / 2 - 1));
        assert_eq!(Expr::parse("a", &chain).unwrap().eval("a", &s).unwrap(), 500.0);
        let unary = format!("{}1", "-".repeat(MAX_EXPR_LEN - 2));
        assert_eq!(Expr::parse("a", &unary).unwrap().eval("a", &s).unwrap(), 1.0);
        let powers = format!("{}1", "1^".repeat(MAX_EXPR_LEN / 2 - 1));
        assert_eq!(Expr::parse("a", &powers).unwrap().eval("a", &s).unwrap(), 1.0);
    }

    #[test]
    fn errors_name_field_and_text() {
        let e = Expr::parse("model.Omega", "x * (").err().unwrap().to_string();
        assert!(e.contains("model.Omega") && e.contains("x * ("), "{e}");
        let s = Scope::new();
        let e = Expr::parse("model.Omega", "y * 2")
            .unwrap()
            .eval("model.Omega", &s)
            .err()
            .unwrap();
        assert!(e.to_string().contains("model.Omega"));
    }
}
