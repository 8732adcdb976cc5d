//! A reader of JSON bytes for the few shapes the kernel parses itself: numbers, plain strings,
//! book levels, and values it skips. It never guesses: anything it does not read exactly as
//! msgspec would (escapes, odd numbers) is an error, and its caller leaves that input to msgspec.

/// What is wrong (in msgspec's words), and where below the levels array: (level, element).
pub type LevelsError = (String, Option<(usize, Option<usize>)>);

/// Powers of ten that a double holds exactly (`number`).
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

    /// The string `"<name>"` (`name` holds no quote, backslash or control character), consumed.
    pub fn key(&mut self, name: &[u8]) -> bool {
        let quoted = self.peek() == Some(b'"')
            && self.bytes[self.at + 1..].starts_with(name)
            && self.bytes.get(self.at + 1 + name.len()) == Some(&b'"');
        if quoted {
            self.at += name.len() + 2;
        }
        quoted
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

    /// `true` or `false`, consumed.
    pub fn boolean(&mut self) -> Option<bool> {
        match self.peek() {
            Some(b't') if self.word(b"true") => Some(true),
            Some(b'f') if self.word(b"false") => Some(false),
            _ => None,
        }
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
        if let Some((value, end)) = plain_decimal(self.bytes, self.at) {
            self.at = end;
            return Ok(value);
        }
        let number = number(self.bytes, self.at).ok_or_else(|| "invalid JSON".to_owned())?;
        if number.value.is_infinite() {
            return Err("Number out of range".to_owned());
        }
        self.at = number.end;
        Ok(number.value)
    }

    /// The JSON number starting here, consumed; None where none starts (nothing consumed).
    pub fn number(&mut self) -> Option<Number> {
        self.skip_space();
        let number = number(self.bytes, self.at)?;
        self.at = number.end;
        Some(number)
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

    /// Reads the object that is all of the input, of the plain shape: keys without escapes, each
    /// once. `field` reads the value of a key it knows and returns that key's bit, or returns 0,
    /// reading nothing, for a key it does not know (checked to be UTF-8, its value skipped).
    /// The bits of the keys read; None for anything else (`field` gave None: a value it refuses).
    pub fn object_fields(&mut self, mut field: impl FnMut(&'a [u8], &mut Self) -> Option<u32>) -> Option<u32> {
        let mut seen = 0u32;
        if !self.eat(b'{') || self.eat(b'}') {
            return None;
        }
        loop {
            // Known keys are ASCII, compared as bytes; any other is checked before it is skipped.
            let key = self.plain_bytes()?;
            if !self.eat(b':') {
                return None;
            }
            let bit = field(key, self)?;
            if bit == 0 && (std::str::from_utf8(key).is_err() || !self.skip_value()) {
                return None;
            }
            if seen & bit != 0 {
                return None; // a repeated field: msgspec's to decide
            }
            seen |= bit;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                break;
            }
            return None;
        }
        self.at_end().then_some(seen)
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

/// The eight bytes at `i` as a decimal, if they are all digits: read as one word (SWAR), as the
/// fast_float parsers do, which halves the cost of a 17-digit number against a digit at a time.
#[inline]
fn eight_digits(bytes: &[u8], i: usize) -> Option<u64> {
    let word = u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?);
    let all_digits = (word.wrapping_add(0x4646_4646_4646_4646) | word.wrapping_sub(0x3030_3030_3030_3030))
        & 0x8080_8080_8080_8080
        == 0;
    if !all_digits {
        return None;
    }
    let word = word - 0x3030_3030_3030_3030;
    let pairs = word.wrapping_mul(10).wrapping_add(word >> 8);
    let high = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    Some(u64::from((high.wrapping_add(low) >> 32) as u32))
}

/// The plain decimal at `start` (`[0-9]+(\.[0-9]+)?`, at most 19 digits, a significand of at most
/// 2^53, followed by `,`, `]`, `}` or white space) and where it ends; None for any other number,
/// which `number` reads. Book levels are such numbers: a loop a digit at a time and one exact
/// division (Clinger's fast path) reads them in about half of `number`'s time.
#[inline]
fn plain_decimal(bytes: &[u8], start: usize) -> Option<(f64, usize)> {
    // The digits from `i` on, appended to `significand` (wrapping past 19 digits in all).
    let digits_from = |mut i: usize, mut significand: u64| {
        while let Some(d) = bytes.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            significand = significand.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        (i, significand)
    };
    let (mut i, mut significand) = digits_from(start, 0);
    let whole = i - start;
    if whole == 0 || (whole > 1 && bytes[start] == b'0') {
        return None;
    }
    let mut fraction = 0;
    if bytes.get(i) == Some(&b'.') {
        let end;
        (end, significand) = digits_from(i + 1, significand);
        fraction = end - i - 1;
        i = end;
        if fraction == 0 {
            return None;
        }
    }
    // At most 19 digits never wrap a u64; a fraction of at most 19 digits is an exact power.
    let plain = whole + fraction <= 19
        && significand <= 1 << 53
        && matches!(bytes.get(i), Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'));
    plain.then(|| (significand as f64 / EXACT_POWERS[fraction], i))
}

/// A JSON number read by `number`.
pub struct Number {
    /// Its double, correctly rounded; an integer's as Python converts its int (-0 is 0.0).
    pub value: f64,
    /// Where it ends.
    pub end: usize,
    /// Neither fraction nor exponent.
    pub integer: bool,
    /// An integer's value, where an i64 holds it.
    pub int: Option<i64>,
}

/// The JSON number at `start` (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`); None where
/// none starts (or one runs on into `.`, `e`, `+` or `-`). One pass: a significand of at most 2^53
/// scaled by an exact power of ten is rounded once (Clinger's fast path); other numbers go to
/// `fast_float2`.
#[inline]
fn number(bytes: &[u8], start: usize) -> Option<Number> {
    let digit = |i: usize| bytes.get(i).filter(|c| c.is_ascii_digit()).map(|&c| u64::from(c - b'0'));
    // The digits from `i` on, appended to `significand` (wrapping past 19 digits in all).
    let digits_from = |mut i: usize, mut significand: u64| {
        while let Some(eight) = eight_digits(bytes, i) {
            significand = significand.wrapping_mul(100_000_000).wrapping_add(eight);
            i += 8;
        }
        while let Some(d) = digit(i) {
            significand = significand.wrapping_mul(10).wrapping_add(d);
            i += 1;
        }
        (i, significand)
    };
    let mut i = start;
    let negative = bytes.get(i) == Some(&b'-');
    i += usize::from(negative);
    let whole_start = i;
    let (mut i, mut significand) = digits_from(i, 0);
    let whole = i - whole_start;
    if whole == 0 || (whole > 1 && bytes[whole_start] == b'0') {
        return None;
    }
    let mut digits = whole;
    let mut scale: i64 = 0;
    let point = bytes.get(i) == Some(&b'.');
    if point {
        i += 1;
        let fraction_start = i;
        (i, significand) = digits_from(i, significand);
        if i == fraction_start {
            return None;
        }
        digits += i - fraction_start;
        scale = -((i - fraction_start) as i64);
    }
    let exponent = matches!(bytes.get(i), Some(b'e' | b'E'));
    if exponent {
        i += 1;
        let negative_exponent = bytes.get(i) == Some(&b'-');
        i += usize::from(matches!(bytes.get(i), Some(b'-' | b'+')));
        let exponent_start = i;
        let mut power: i64 = 0;
        while let Some(d) = digit(i) {
            power = (power * 10 + d as i64).min(1 << 32); // far past any double; no overflow
            i += 1;
        }
        if i == exponent_start {
            return None;
        }
        scale += if negative_exponent { -power } else { power };
    }
    if matches!(bytes.get(i), Some(b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    // At most 19 digits never wrap a u64.
    let fast = digits <= 19 && significand <= 1 << 53 && (-22..=22).contains(&scale);
    let value = if fast {
        let exact = significand as f64;
        if scale < 0 {
            exact / EXACT_POWERS[(-scale) as usize]
        } else {
            exact * EXACT_POWERS[scale as usize]
        }
    } else {
        fast_float2::parse::<f64, _>(&bytes[start + usize::from(negative)..i]).ok()?
    };
    let integer = !point && !exponent;
    let int = if !integer || digits > 19 {
        None
    } else if negative {
        0i64.checked_sub_unsigned(significand)
    } else {
        i64::try_from(significand).ok()
    };
    Some(Number {
        value: if negative && !(value == 0.0 && integer) { -value } else { value },
        end: i,
        integer,
        int,
    })
}
