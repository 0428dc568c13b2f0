//! The hand-written lexer of the expression language.
//!
//! The lexer never stops at an error: it reports a diagnostic and hands the
//! parser the most useful token it can (the string read so far, `==` for a
//! lone `=`, an [`TokenKind::Invalid`] for text that is no token at all), so
//! one typo yields one diagnostic.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub enum TokenKind {
    /// An integer literal's magnitude. The sign is a separate `-` token so
    /// that the parser can accept `-9223372036854775808`.
    Int(u64),
    Double(f64),
    /// A string literal with its escapes already decoded.
    String(String),
    Ident,
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    QuestionDot,
    Question,
    QuestionQuestion,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    /// Text that forms no token; the lexer has already reported it.
    Invalid,
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Words CEL keeps out of identifiers so that it can be embedded in host
/// languages. `true`, `false`, `null` and `in` are keywords with tokens of
/// their own and are not listed here.
pub const RESERVED_WORDS: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "namespace",
    "package",
    "return",
    "var",
    "void",
    "while",
];

pub fn is_reserved_word(word: &str) -> bool {
    RESERVED_WORDS.contains(&word)
}

/// Whether `text` lexes as one identifier, so that a fix may put it into an
/// expression as a name (`nodes.<text>`, `input.<text>`).
pub fn is_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
        && !is_reserved_word(text)
        && !matches!(text, "true" | "false" | "null" | "in")
}

/// Lexes all of `text`; the last token is always [`TokenKind::Eof`].
pub fn tokenize(text: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut lexer = Lexer::new(text);
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token();
        let done = token.kind == TokenKind::Eof;
        tokens.push(token);
        if done {
            return (tokens, lexer.diagnostics);
        }
    }
}

pub struct Lexer<'t> {
    text: &'t str,
    pos: usize,
    end: usize,
    /// Whether the previous token can end an operand: then `.5` is a field
    /// access `.` `5` (an error the parser explains), not the double `0.5`.
    after_operand: bool,
    diagnostics: Vec<Diagnostic>,
    unterminated_string: Option<Span>,
}

impl<'t> Lexer<'t> {
    pub fn new(text: &'t str) -> Lexer<'t> {
        Lexer::with_range(text, 0, text.len())
    }

    /// Lexes `text[start..end]`, reporting spans as offsets into `text`.
    /// `start` and `end` must be character boundaries.
    pub(crate) fn with_range(text: &'t str, start: usize, end: usize) -> Lexer<'t> {
        let end = end.min(text.len());
        Lexer {
            text,
            pos: start.min(end),
            end,
            after_operand: false,
            diagnostics: Vec::new(),
            unterminated_string: None,
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    /// The first string literal that ran to the end of its line or of the
    /// text, if any: the template scanner names it when `}}` goes missing.
    pub(crate) fn unterminated_string(&self) -> Option<Span> {
        self.unterminated_string
    }

    pub fn next_token(&mut self) -> Token {
        self.skip_whitespace();
        let start = self.pos;
        let Some(byte) = self.byte(0) else {
            return Token {
                kind: TokenKind::Eof,
                span: Span::at(self.end),
            };
        };
        let kind = match byte {
            b'0'..=b'9' => self.number(),
            b'.' if !self.after_operand && self.byte(1).is_some_and(|b| b.is_ascii_digit()) => {
                self.number()
            }
            b'"' | b'\'' => self.string(start, false),
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => self.word(),
            _ => self.punctuation(byte),
        };
        self.after_operand = matches!(
            kind,
            TokenKind::Int(_)
                | TokenKind::Double(_)
                | TokenKind::String(_)
                | TokenKind::Ident
                | TokenKind::True
                | TokenKind::False
                | TokenKind::Null
                | TokenKind::RParen
                | TokenKind::RBracket
                | TokenKind::RBrace
        );
        Token {
            kind,
            span: Span::new(start, self.pos),
        }
    }

    fn byte(&self, ahead: usize) -> Option<u8> {
        let index = self.pos + ahead;
        if index < self.end {
            Some(self.text.as_bytes()[index])
        } else {
            None
        }
    }

    fn char(&self) -> Option<char> {
        self.text[self.pos..self.end].chars().next()
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::new(Code::EXPRESSION_SYNTAX, span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') = self.byte(0) {
            self.pos += 1;
        }
    }

    fn eat_while(&mut self, accept: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.byte(0).is_some_and(&accept) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> TokenKind {
        let start = self.pos;
        if self.byte(0) == Some(b'0') && matches!(self.byte(1), Some(b'x' | b'X')) {
            self.pos += 2;
            let digits_start = self.pos;
            if self.eat_while(|b| b.is_ascii_hexdigit()) == 0 {
                self.error(
                    Span::new(start, self.pos),
                    "expected hexadecimal digits after `0x`",
                );
                self.reject_suffix(start, false);
                return TokenKind::Invalid;
            }
            let value = u64::from_str_radix(&self.text[digits_start..self.pos], 16);
            return self.finish_int(start, value.ok());
        }

        self.eat_while(|b| b.is_ascii_digit());
        let mut is_double = false;
        if self.byte(0) == Some(b'.') && self.byte(1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            self.eat_while(|b| b.is_ascii_digit());
            is_double = true;
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            let (sign, first_digit) = match self.byte(1) {
                Some(b'+' | b'-') => (1, self.byte(2)),
                other => (0, other),
            };
            if first_digit.is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.eat_while(|b| b.is_ascii_digit());
                is_double = true;
            } else if sign == 1 {
                self.pos += 1;
                self.error(
                    Span::new(start, self.pos + 1),
                    "expected digits in the exponent of this number",
                );
                self.pos += 1;
                return TokenKind::Invalid;
            }
        }

        if is_double {
            let literal = &self.text[start..self.pos];
            let value = literal.parse::<f64>().ok().filter(|v| v.is_finite());
            let suffix_ok = self.reject_suffix(start, true);
            return match value {
                Some(value) if suffix_ok => TokenKind::Double(value),
                Some(_) => TokenKind::Invalid,
                None => {
                    self.error(
                        Span::new(start, start + literal.len()),
                        format!("`{literal}` is too large for a double"),
                    );
                    TokenKind::Invalid
                }
            };
        }
        let value = self.text[start..self.pos].parse::<u64>();
        self.finish_int(start, value.ok())
    }

    fn finish_int(&mut self, start: usize, value: Option<u64>) -> TokenKind {
        let digits_end = self.pos;
        let suffix_ok = self.reject_suffix(start, false);
        match value {
            Some(value) if suffix_ok => TokenKind::Int(value),
            Some(_) => TokenKind::Invalid,
            None => {
                self.error(
                    Span::new(start, digits_end),
                    format!(
                        "integer literal `{}` does not fit in 64 bits",
                        &self.text[start..digits_end]
                    ),
                );
                TokenKind::Invalid
            }
        }
    }

    /// Reports letters glued to a number (`1u`, `2px`) and consumes them, so
    /// they do not become a second, confusing error. Returns whether there
    /// was no suffix.
    fn reject_suffix(&mut self, start: usize, is_double: bool) -> bool {
        let suffix_start = self.pos;
        if self.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_') == 0 {
            return true;
        }
        let span = Span::new(suffix_start, self.pos);
        let suffix = &self.text[suffix_start..self.pos];
        let number = &self.text[start..suffix_start];
        if !is_double && (suffix == "u" || suffix == "U") {
            let message = format!(
                "unsigned integer literals (`{number}{suffix}`) are not supported; every integer is a signed 64-bit int"
            );
            let diagnostic =
                Diagnostic::new(Code::EXPRESSION_SYNTAX, Span::new(start, span.end), message)
                    .with_replacement(format!("write `{number}`"), span, "");
            self.diagnostics.push(diagnostic);
        } else {
            let message = format!("invalid suffix `{suffix}` on number `{number}`");
            self.error(span, message);
        }
        false
    }

    /// An identifier or keyword, or the prefix of a raw or bytes literal.
    fn word(&mut self) -> TokenKind {
        let start = self.pos;
        self.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        let word = &self.text[start..self.pos];
        if matches!(self.byte(0), Some(b'"' | b'\'')) && word.len() <= 2 {
            let lower = word.to_ascii_lowercase();
            match lower.as_str() {
                "r" => return self.string(start, true),
                "b" | "rb" | "br" => {
                    self.string(start, lower.contains('r'));
                    self.error(
                        Span::new(start, self.pos),
                        "bytes literals (`b\"...\"`) are not supported; use a string literal",
                    );
                    return TokenKind::Invalid;
                }
                _ => {}
            }
        }
        match word {
            "true" => TokenKind::True,
            "false" => TokenKind::False,
            "null" => TokenKind::Null,
            "in" => TokenKind::In,
            _ => TokenKind::Ident,
        }
    }

    /// A string literal whose opening quote (after any prefix) is at `pos`;
    /// `start` is where the token began, prefix included.
    fn string(&mut self, start: usize, raw: bool) -> TokenKind {
        let quote = self.text.as_bytes()[self.pos];
        let triple = self.byte(1) == Some(quote) && self.byte(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut value = String::new();
        loop {
            let Some(c) = self.char() else {
                self.unterminated(start, quote, triple);
                break;
            };
            if c as u32 == quote as u32 {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.byte(1) == Some(quote) && self.byte(2) == Some(quote) {
                    self.pos += 3;
                    break;
                }
            }
            if !triple && (c == '\n' || c == '\r') {
                self.unterminated(start, quote, triple);
                break;
            }
            if c == '\\' && !raw {
                self.escape(&mut value, triple);
                continue;
            }
            value.push(c);
            self.pos += c.len_utf8();
        }
        TokenKind::String(value)
    }

    fn unterminated(&mut self, start: usize, quote: u8, triple: bool) {
        let span = Span::new(start, self.pos);
        let closer = if triple {
            (quote as char).to_string().repeat(3)
        } else {
            (quote as char).to_string()
        };
        let help = if triple {
            format!("close it with `{closer}`")
        } else {
            format!(
                "close it with `{closer}` on the same line; use a triple-quoted string for several lines"
            )
        };
        self.error(span, "unterminated string literal").help = Some(help);
        self.unterminated_string.get_or_insert(span);
    }

    /// Decodes the escape sequence whose backslash is at `pos`.
    fn escape(&mut self, out: &mut String, triple: bool) {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.char() else {
            // The string loop reports the missing closing quote.
            return;
        };
        if !triple && (c == '\n' || c == '\r') {
            return;
        }
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '`' | '?' => Some(c),
            _ => None,
        };
        if let Some(decoded) = simple {
            out.push(decoded);
            return;
        }
        match c {
            'x' | 'X' => {
                if let Some(value) = self.hex_digits(start, c, 2) {
                    self.push_code_point(out, start, value);
                }
            }
            'U' => {
                if let Some(value) = self.hex_digits(start, c, 8) {
                    self.push_code_point(out, start, value);
                }
            }
            'u' => {
                let Some(value) = self.hex_digits(start, c, 4) else {
                    return;
                };
                // CEL writes characters outside the BMP as surrogate pairs.
                if (0xD800..0xDC00).contains(&value)
                    && self.byte(0) == Some(b'\\')
                    && self.byte(1) == Some(b'u')
                {
                    let low_start = self.pos;
                    self.pos += 2;
                    let Some(low) = self.hex_digits(low_start, 'u', 4) else {
                        return;
                    };
                    if (0xDC00..0xE000).contains(&low) {
                        let combined = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00);
                        self.push_code_point(out, start, combined);
                    } else {
                        self.push_code_point(out, start, value);
                        self.push_code_point(out, low_start, low);
                    }
                    return;
                }
                self.push_code_point(out, start, value);
            }
            '0'..='3' => {
                let digits_ok = (0..2).all(|ahead| self.byte(ahead).is_some_and(is_octal_digit));
                if digits_ok {
                    let value = (c as u32 - '0' as u32) * 64
                        + octal(self.byte(0)) * 8
                        + octal(self.byte(1));
                    self.pos += 2;
                    self.push_code_point(out, start, value);
                } else {
                    self.eat_while(is_octal_digit);
                    self.error(
                        Span::new(start, self.pos),
                        "an octal escape needs exactly three octal digits, `\\000` to `\\377`",
                    );
                }
            }
            _ => {
                let span = Span::new(start, self.pos);
                self.error(span, format!("invalid escape sequence `\\{c}`"))
                    .help = Some(
                        "valid escapes are \\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\\" \\` \\?, \\xHH, \\uHHHH, \\UHHHHHHHH and octal \\ooo; a raw string (r\"...\") keeps backslashes as they are"
                            .to_string(),
                    );
            }
        }
    }

    /// Reads exactly `count` hex digits after the escape letter.
    fn hex_digits(&mut self, start: usize, letter: char, count: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            match self.byte(0) {
                Some(b) if b.is_ascii_hexdigit() => {
                    value = value * 16 + (b as char).to_digit(16).unwrap_or(0);
                    self.pos += 1;
                }
                _ => {
                    self.error(
                        Span::new(start, self.pos),
                        format!(
                            "`\\{letter}` must be followed by exactly {count} hexadecimal digits"
                        ),
                    );
                    return None;
                }
            }
        }
        Some(value)
    }

    fn push_code_point(&mut self, out: &mut String, start: usize, value: u32) {
        match char::from_u32(value) {
            Some(c) => out.push(c),
            None => {
                let span = Span::new(start, self.pos);
                let escape = self.text[start..self.pos].to_string();
                self.error(
                    span,
                    format!(
                        "`{escape}` is not a Unicode scalar value (surrogate or above U+10FFFF)"
                    ),
                );
            }
        }
    }

    fn punctuation(&mut self, byte: u8) -> TokenKind {
        let start = self.pos;
        let next = self.byte(1);
        let (kind, len) = match byte {
            b'(' => (TokenKind::LParen, 1),
            b')' => (TokenKind::RParen, 1),
            b'[' => (TokenKind::LBracket, 1),
            b']' => (TokenKind::RBracket, 1),
            b'{' => (TokenKind::LBrace, 1),
            b'}' => (TokenKind::RBrace, 1),
            b',' => (TokenKind::Comma, 1),
            b':' => (TokenKind::Colon, 1),
            b'.' => (TokenKind::Dot, 1),
            b'+' => (TokenKind::Plus, 1),
            b'-' => (TokenKind::Minus, 1),
            b'*' => (TokenKind::Star, 1),
            b'/' => (TokenKind::Slash, 1),
            b'%' => (TokenKind::Percent, 1),
            b'?' => match next {
                Some(b'?') => (TokenKind::QuestionQuestion, 2),
                // `c ?.5 : 1` is a conditional with a double in it.
                Some(b'.') if !self.byte(2).is_some_and(|b| b.is_ascii_digit()) => {
                    (TokenKind::QuestionDot, 2)
                }
                _ => (TokenKind::Question, 1),
            },
            b'!' => match next {
                Some(b'=') => (TokenKind::NotEq, 2),
                _ => (TokenKind::Bang, 1),
            },
            b'<' => match next {
                Some(b'=') => (TokenKind::Le, 2),
                _ => (TokenKind::Lt, 1),
            },
            b'>' => match next {
                Some(b'=') => (TokenKind::Ge, 2),
                _ => (TokenKind::Gt, 1),
            },
            b'=' => match next {
                Some(b'=') => (TokenKind::EqEq, 2),
                _ => return self.mistyped_operator(TokenKind::EqEq, "=", "=="),
            },
            b'&' => match next {
                Some(b'&') => (TokenKind::AndAnd, 2),
                _ => return self.mistyped_operator(TokenKind::AndAnd, "&", "&&"),
            },
            b'|' => match next {
                Some(b'|') => (TokenKind::OrOr, 2),
                _ => return self.mistyped_operator(TokenKind::OrOr, "|", "||"),
            },
            _ => return self.invalid_characters(start),
        };
        self.pos += len;
        kind
    }

    /// `=`, `&` and `|` are almost always typos for the doubled operator:
    /// reading them as that operator keeps the rest of the tree sound.
    fn mistyped_operator(&mut self, kind: TokenKind, written: &str, meant: &str) -> TokenKind {
        let span = Span::new(self.pos, self.pos + 1);
        self.pos += 1;
        let diagnostic = Diagnostic::new(
            Code::EXPRESSION_SYNTAX,
            span,
            format!("`{written}` is not an operator; did you mean `{meant}`?"),
        )
        .with_replacement(format!("write `{meant}`"), span, meant);
        self.diagnostics.push(diagnostic);
        kind
    }

    fn invalid_characters(&mut self, start: usize) -> TokenKind {
        // The first character is taken unconditionally so that the lexer
        // always moves forward.
        let first = self.char();
        self.pos += first.map_or(1, char::len_utf8);
        while let Some(c) = self.char() {
            if c.is_ascii() && (starts_token(c as u8) || c.is_ascii_whitespace()) {
                break;
            }
            self.pos += c.len_utf8();
        }
        let text = &self.text[start..self.pos];
        let message = if text.chars().count() == 1 {
            format!("unexpected character `{text}`")
        } else {
            format!("unexpected characters `{text}`")
        };
        let help = match first {
            Some(c) if c.is_alphabetic() && !c.is_ascii() => {
                Some("names may use only ASCII letters, digits and `_`")
            }
            Some('`') => Some("backquoted names are not supported"),
            Some('#') => Some("the expression language has no comments"),
            _ => None,
        };
        let diagnostic = self.error(Span::new(start, self.pos), message);
        if let Some(help) = help {
            diagnostic.help = Some(help.to_string());
        }
        TokenKind::Invalid
    }
}

fn starts_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'_' | b'"'
                | b'\''
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b','
                | b':'
                | b'.'
                | b'?'
                | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'%'
                | b'!'
                | b'<'
                | b'>'
                | b'='
                | b'&'
                | b'|'
        )
}

fn is_octal_digit(byte: u8) -> bool {
    (b'0'..=b'7').contains(&byte)
}

fn octal(byte: Option<u8>) -> u32 {
    byte.map_or(0, |b| (b - b'0') as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let (tokens, diagnostics) = tokenize(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
        tokens.into_iter().map(|t| t.kind).collect()
    }

    fn string_value(text: &str) -> String {
        match kinds(text).as_slice() {
            [TokenKind::String(s), TokenKind::Eof] => s.clone(),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn single_error(text: &str) -> Diagnostic {
        let (_, diagnostics) = tokenize(text);
        assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:?}");
        diagnostics.into_iter().next().unwrap()
    }

    #[test]
    fn numbers() {
        use TokenKind::*;
        assert_eq!(
            kinds("0 42 0x1F 0XfF"),
            [Int(0), Int(42), Int(31), Int(255), Eof]
        );
        assert_eq!(
            kinds("1.5, 1e3, 1.5e-3, .5, 2E+2"),
            [
                Double(1.5),
                Comma,
                Double(1000.0),
                Comma,
                Double(0.0015),
                Comma,
                Double(0.5),
                Comma,
                Double(200.0),
                Eof
            ]
        );
        assert_eq!(kinds("18446744073709551615"), [Int(u64::MAX), Eof]);
        // `1.e3` is the int 1 and a field `e3`, as in CEL.
        assert_eq!(kinds("1.e3"), [Int(1), Dot, Ident, Eof]);
    }

    #[test]
    fn dot_digit_after_an_operand_is_a_field_access() {
        use TokenKind::*;
        assert_eq!(kinds("a.5"), [Ident, Dot, Int(5), Eof]);
        assert_eq!(
            kinds("a[.5]"),
            [Ident, LBracket, Double(0.5), RBracket, Eof]
        );
        assert_eq!(
            kinds("c?.5:1"),
            [Ident, Question, Double(0.5), Colon, Int(1), Eof]
        );
        assert_eq!(kinds("c?.x"), [Ident, QuestionDot, Ident, Eof]);
    }

    #[test]
    fn number_errors() {
        let d = single_error("1u");
        assert!(
            d.message.contains("unsigned integer literals"),
            "{}",
            d.message
        );
        assert_eq!(d.span, Span::new(0, 2));
        let fix = d.fix.expect("a fix");
        assert_eq!(fix.edits[0].span, Span::new(1, 2));
        assert_eq!(fix.edits[0].replacement, "");

        assert_eq!(
            single_error("0x").message,
            "expected hexadecimal digits after `0x`"
        );
        assert_eq!(
            single_error("2px").message,
            "invalid suffix `px` on number `2`"
        );
        assert_eq!(
            single_error("1e+").message,
            "expected digits in the exponent of this number"
        );
        assert_eq!(
            single_error("18446744073709551616").message,
            "integer literal `18446744073709551616` does not fit in 64 bits"
        );
        assert_eq!(
            single_error("1e999").message,
            "`1e999` is too large for a double"
        );
    }

    #[test]
    fn identifier_shapes() {
        assert!(is_identifier("dispatch_2"));
        assert!(is_identifier("_x"));
        for not in ["", "2x", "dis:patch", "a-b", "é", "in", "null", "while"] {
            assert!(!is_identifier(not), "{not}");
        }
    }

    #[test]
    fn keywords_and_identifiers() {
        use TokenKind::*;
        assert_eq!(
            kinds("true false null in _x9 inx"),
            [True, False, Null, In, Ident, Ident, Eof]
        );
    }

    #[test]
    fn operators() {
        use TokenKind::*;
        assert_eq!(
            kinds("?? ?. ? ! != == < <= > >= && || + - * / % , : ( ) [ ] { }"),
            [
                QuestionQuestion,
                QuestionDot,
                Question,
                Bang,
                NotEq,
                EqEq,
                Lt,
                Le,
                Gt,
                Ge,
                AndAnd,
                OrOr,
                Plus,
                Minus,
                Star,
                Slash,
                Percent,
                Comma,
                Colon,
                LParen,
                RParen,
                LBracket,
                RBracket,
                LBrace,
                RBrace,
                Eof
            ]
        );
    }

    #[test]
    fn single_operator_characters_are_read_as_the_doubled_operator() {
        for (text, kind, fixed) in [
            ("a = b", TokenKind::EqEq, "=="),
            ("a & b", TokenKind::AndAnd, "&&"),
            ("a | b", TokenKind::OrOr, "||"),
        ] {
            let (tokens, diagnostics) = tokenize(text);
            assert_eq!(tokens[1].kind, kind);
            assert_eq!(diagnostics.len(), 1);
            let fix = diagnostics[0].fix.as_ref().expect("a fix");
            assert_eq!(fix.edits[0].replacement, fixed);
        }
    }

    #[test]
    fn string_forms() {
        assert_eq!(string_value("'abc'"), "abc");
        assert_eq!(string_value("\"abc\""), "abc");
        assert_eq!(string_value("''"), "");
        assert_eq!(string_value("'\"\"'"), "\"\"");
        assert_eq!(string_value("'''x''x'''"), "x''x");
        assert_eq!(string_value("\"\"\"a\nb\"\"\""), "a\nb");
        assert_eq!(string_value("r'\\n'"), "\\n");
        assert_eq!(string_value("R\"\\\\\""), "\\\\");
        assert_eq!(string_value("r'''a\\'''"), "a\\");
        assert_eq!(string_value("'é😀'"), "é😀");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            string_value(r#"'\a\b\f\n\r\t\v\\\'\"\`\?'"#),
            "\x07\x08\x0c\n\r\t\x0b\\'\"`?"
        );
        assert_eq!(string_value(r"'\x41\X42'"), "AB");
        assert_eq!(string_value(r"'\u00e9'"), "é");
        assert_eq!(string_value(r"'\U0001F600'"), "😀");
        assert_eq!(string_value(r"'\ud83d\ude00'"), "😀");
        assert_eq!(string_value(r"'\101\377'"), "Aÿ");
        assert_eq!(string_value(r"'''\n'''"), "\n");
    }

    #[test]
    fn escape_errors() {
        let d = single_error(r"'a\qb'");
        assert_eq!(d.message, "invalid escape sequence `\\q`");
        assert_eq!(d.span, Span::new(2, 4));
        assert!(d.help.is_some());
        assert_eq!(
            single_error(r"'\x4'").message,
            "`\\x` must be followed by exactly 2 hexadecimal digits"
        );
        assert_eq!(
            single_error(r"'\u12'").message,
            "`\\u` must be followed by exactly 4 hexadecimal digits"
        );
        assert_eq!(
            single_error(r"'\U1234'").message,
            "`\\U` must be followed by exactly 8 hexadecimal digits"
        );
        assert!(single_error(r"'\0'").message.contains("three octal digits"));
        assert_eq!(
            single_error(r"'\8'").message,
            "invalid escape sequence `\\8`"
        );
        assert!(
            single_error(r"'\ud800'")
                .message
                .contains("not a Unicode scalar value")
        );
        assert!(
            single_error(r"'\U00110000'")
                .message
                .contains("not a Unicode scalar value")
        );
    }

    #[test]
    fn unterminated_strings() {
        let (tokens, diagnostics) = tokenize("'abc\n+ 1");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, "unterminated string literal");
        assert_eq!(diagnostics[0].span, Span::new(0, 4));
        // Lexing resumes on the next line.
        assert_eq!(tokens[1].kind, TokenKind::Plus);

        let d = single_error("'''abc");
        assert_eq!(d.span, Span::new(0, 6));
        assert_eq!(d.help.as_deref(), Some("close it with `'''`"));
        let d = single_error("\"abc\\");
        assert_eq!(d.message, "unterminated string literal");
    }

    #[test]
    fn bytes_literals_are_rejected() {
        for text in ["b'abc'", "B\"x\"", "rb'x'", "bR'''x'''"] {
            let d = single_error(text);
            assert!(d.message.contains("bytes literals"), "{text}");
            assert_eq!(d.span, Span::new(0, text.len()));
        }
    }

    #[test]
    fn invalid_characters_are_grouped() {
        let (tokens, diagnostics) = tokenize("a @# b");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, "unexpected characters `@#`");
        assert_eq!(tokens[1].kind, TokenKind::Invalid);
        assert_eq!(tokens[2].kind, TokenKind::Ident);
        let d = single_error("naïve");
        assert_eq!(d.message, "unexpected character `ï`");
        assert!(d.help.is_some());
    }

    #[test]
    fn ranged_lexing_stays_inside_the_range() {
        let text = "{{ 'a' }}";
        let mut lexer = Lexer::with_range(text, 2, 7);
        let token = lexer.next_token();
        assert_eq!(token.kind, TokenKind::String("a".into()));
        assert_eq!(token.span, Span::new(3, 6));
        assert_eq!(lexer.next_token().span, Span::at(7));
        // A string cut by the range end is unterminated, not read past it.
        let mut lexer = Lexer::with_range("'ab'", 0, 3);
        lexer.next_token();
        assert_eq!(lexer.unterminated_string(), Some(Span::new(0, 3)));
    }
}
