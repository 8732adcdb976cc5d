//! A reader of JSON bytes for the few shapes the kernel parses itself: numbers, plain strings,
//! book levels, and values it skips. It never guesses: anything it does not read exactly as
//! msgspec would (escapes, odd numbers) is an error, and its caller leaves that input to msgspec.

/// What is wrong (in msgspec's words), and where below the levels array: (level, element).
pub type LevelsError = (String, Option<(usize, Option<usize>)>);

/// Powers of ten that a double holds exactly: a decimal of at most 15 digits scaled by one of
/// them is rounded once, correctly (Clinger's fast path).
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Unknown fields nested deeper than this are left to msgspec.
const MAX_DEPTH: usize = 32;

pub struct Reader<'a> {
    bytes: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not white space (not consumed).
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    /// Consume `byte` if it comes next.
    pub fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// msgspec's name of the JSON type starting here.
    pub fn kind(&mut self) -> &'static str {
        match self.peek() {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b'"') => "str",
            Some(b't' | b'f') => "bool",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => {
                if self.number_token().iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                    "float"
                } else {
                    "int"
                }
            }
            _ => "nothing",
        }
    }

    fn number_token(&self) -> &'a [u8] {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        let end = rest
            .iter()
            .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// `null`, consumed.
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// A string without escapes, consumed; None for anything else (nothing consumed).
    pub fn plain_string(&mut self) -> Option<&'a str> {
        let at = self.at;
        let text = std::str::from_utf8(self.plain_bytes()?).ok();
        if text.is_none() {
            self.at = at;
        }
        text
    }

    /// The bytes of a string without escapes, consumed, not yet checked to be UTF-8 (a caller
    /// comparing them with known ASCII need not); None for anything else (nothing consumed).
    pub fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.at + 1;
        let length = self.bytes[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.bytes[start + length] != b'"' {
            return None;
        }
        self.at = start + length + 1;
        Some(&self.bytes[start..start + length])
    }

    /// An integer of at most 18 digits (what an i64 always holds), consumed; None for anything else.
    pub fn int(&mut self) -> Option<i64> {
        self.skip_space();
        let token = self.number_token();
        let (negative, digits) = match token.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, token),
        };
        if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return None; // not JSON
        }
        let value = digits.iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        self.at += token.len();
        Some(if negative { -value } else { value })
    }

    /// The number starting here as msgspec decodes it into a float, consumed.
    pub fn float(&mut self) -> Result<f64, String> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(format!("Expected `float`, got `{}`", self.kind()));
        }
        if let Some((value, end)) = decimal(self.bytes, self.at) {
            self.at = end;
            return Ok(value);
        }
        let token = self.number_token();
        if !is_json_number(token) {
            return Err("invalid JSON".to_owned());
        }
        let value: f64 = fast_float2::parse(token).map_err(|_| "invalid JSON".to_owned())?;
        if value.is_infinite() {
            return Err("Number out of range".to_owned());
        }
        self.at += token.len();
        // An integer converts as Python's int does: -0 is 0.0, not -0.0.
        let integer = !token.iter().any(|c| matches!(c, b'.' | b'e' | b'E'));
        Ok(if integer && value == 0.0 { 0.0 } else { value })
    }

    /// The pairs of a levels array (`[[price, size], ...]`), consumed.
    pub fn levels(&mut self) -> Result<Vec<(f64, f64)>, LevelsError> {
        if !self.eat(b'[') {
            return Err((format!("Expected `array`, got `{}`", self.kind()), None));
        }
        let mut pairs = Vec::with_capacity(16);
        if self.eat(b']') {
            return Ok(pairs);
        }
        loop {
            let i = pairs.len();
            pairs.push(self.level().map_err(|(what, element)| (what, Some((i, element))))?);
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(pairs);
            }
            return Err(("invalid JSON".to_owned(), None));
        }
    }

    fn level(&mut self) -> Result<(f64, f64), (String, Option<usize>)> {
        if !self.eat(b'[') {
            return Err((format!("Expected `array`, got `{}`", self.kind()), None));
        }
        let length = || ("Expected `array` of length 2".to_owned(), None);
        if self.peek() == Some(b']') {
            return Err(length());
        }
        let price = self.float().map_err(|what| (what, Some(0)))?;
        if !self.eat(b',') {
            return Err(length());
        }
        let size = self.float().map_err(|what| (what, Some(1)))?;
        if !self.eat(b']') {
            return Err(length());
        }
        Ok((price, size))
    }

    /// Step over one JSON value; false where it is not one this reader can walk exactly, or
    /// nests deeper than `MAX_DEPTH` (the stack stays bounded whatever the input).
    pub fn skip_value(&mut self) -> bool {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'"') => self.plain_string().is_some(),
            Some(b'-' | b'0'..=b'9') => self.float().is_ok(),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.null(),
            Some(open @ (b'[' | b'{')) if depth < MAX_DEPTH => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.at += 1;
                if self.eat(close) {
                    return true;
                }
                loop {
                    if open == b'{' && !(self.plain_string().is_some() && self.eat(b':')) {
                        return false;
                    }
                    if !self.skip_nested(depth + 1) {
                        return false;
                    }
                    if self.eat(close) {
                        return true;
                    }
                    if !self.eat(b',') {
                        return false;
                    }
                }
            }
            _ => false,
        }
    }

    fn word(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }
}

/// The plain decimal at `start` (`-?(0|[1-9]digits)[.digits]`, at most 15 digits in all, not
/// followed by an exponent) and where it ends; None for any other number (the general parser's).
#[inline]
fn decimal(bytes: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let negative = bytes.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let whole_start = i;
    let mut mantissa: u64 = 0;
    while let Some(&c @ b'0'..=b'9') = bytes.get(i) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    let whole = i - whole_start;
    let mut fraction = 0;
    let point = bytes.get(i) == Some(&b'.');
    if point {
        i += 1;
        let fraction_start = i;
        while let Some(&c @ b'0'..=b'9') = bytes.get(i) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        fraction = i - fraction_start;
    }
    let leading_zero = whole > 1 && bytes[whole_start] == b'0';
    let exponent_or_junk = matches!(bytes.get(i), Some(b'e' | b'E' | b'+' | b'-' | b'.'));
    if whole == 0 || (point && fraction == 0) || whole + fraction > 15 || leading_zero || exponent_or_junk {
        return None;
    }
    let value = mantissa as f64 / EXACT_POWERS[fraction];
    // An integer converts as Python's int does: -0 is 0.0, not -0.0.
    let value = if negative && !(value == 0.0 && !point) { -value } else { value };
    Some((value, i))
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(token: &[u8]) -> bool {
    let mut rest = token.strip_prefix(b"-").unwrap_or(token);
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let whole = digits(rest);
    if whole == 0 || (whole > 1 && rest[0] == b'0') {
        return false;
    }
    rest = &rest[whole..];
    if let Some(after) = rest.strip_prefix(b".") {
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    if let Some((b'e' | b'E', after)) = rest.split_first() {
        let after = after.strip_prefix(b"+").or_else(|| after.strip_prefix(b"-")).unwrap_or(after);
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    rest.is_empty()
}
