//! Characters to tokens, on demand: the parser pulls one token at a time, so a substitution
//! template can stop lexing at the `}` that closes `${...}` and treat the rest as text.

use crate::error::{ParseError, Position};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name or keyword, as written (keywords are matched without regard to case).
    Ident(String),
    Int(i64),
    Dec(f64),
    /// A string literal; `double` when written with `"` (FROM requires `'`).
    Str {
        value: String,
        double: bool,
    },
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Dec(f) => format!("number {}", crate::json::format_decimal(*f)),
            Tok::Str { value, .. } => format!("string '{value}'"),
            Tok::Eof => "end of input".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Star => "*",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Colon => ":",
            _ => "",
        }
    }

    /// Whether this is the keyword `kw` (given in upper case).
    pub(crate) fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Position,
}

#[derive(Debug, Clone)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    offset: usize,
    pos: Position,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer::at(src, 0, Position::START)
    }

    /// A lexer that starts at byte `offset` of `src`, which is at `pos`.
    pub(crate) fn at(src: &'a str, offset: usize, pos: Position) -> Lexer<'a> {
        Lexer { src, offset, pos }
    }

    /// Byte offset and position of the next character.
    pub(crate) fn cursor(&self) -> (usize, Position) {
        (self.offset, self.pos)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.offset..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.src[self.offset..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        while let Some(' ' | '\t' | '\n' | '\r') = self.peek() {
            self.bump();
        }
        let pos = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let err = |m: String| Err(ParseError::new(m, pos));
        let tok = match c {
            '*' => Tok::Star,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '=' => Tok::Eq,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            ':' => Tok::Colon,
            '<' => match self.peek() {
                Some('=') => {
                    self.bump();
                    Tok::Le
                }
                Some('>') => {
                    self.bump();
                    Tok::Ne
                }
                _ => Tok::Lt,
            },
            '>' => {
                if self.peek() == Some('=') {
                    self.bump();
                    Tok::Ge
                } else {
                    Tok::Gt
                }
            }
            '!' if self.peek() == Some('=') => {
                self.bump();
                Tok::Ne
            }
            '|' if self.peek() == Some('|') => {
                return err(
                    "The || operator is not part of AWS IoT SQL; use concat() or +".to_owned(),
                );
            }
            '\'' | '"' => self.string(c, pos)?,
            '0'..='9' => self.number(c, pos)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.offset - c.len_utf8();
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.bump();
                }
                Tok::Ident(self.src[start..self.offset].to_owned())
            }
            c => return err(format!("Unexpected character '{c}'")),
        };
        Ok(Token { tok, pos })
    }

    fn number(&mut self, first: char, pos: Position) -> Result<Tok, ParseError> {
        let start = self.offset - first.len_utf8();
        let mut integral = true;
        let digits = |l: &mut Lexer<'_>| {
            while l.peek().is_some_and(|c| c.is_ascii_digit()) {
                l.bump();
            }
        };
        digits(self);
        if self.peek() == Some('.') && self.peek2().is_some_and(|c| c.is_ascii_digit()) {
            integral = false;
            self.bump();
            digits(self);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = matches!(self.peek2(), Some('+' | '-'));
            let mut ahead = self.src[self.offset..]
                .chars()
                .skip(if sign { 2 } else { 1 });
            if ahead.next().is_some_and(|c| c.is_ascii_digit()) {
                integral = false;
                self.bump();
                if sign {
                    self.bump();
                }
                digits(self);
            }
        }
        let text = &self.src[start..self.offset];
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ParseError::new(format!("Invalid number '{text}...'"), pos));
        }
        if integral && let Ok(i) = text.parse::<i64>() {
            return Ok(Tok::Int(i));
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Tok::Dec(f)),
            _ => Err(ParseError::new(
                format!("Number {text} is out of range"),
                pos,
            )),
        }
    }

    fn string(&mut self, quote: char, pos: Position) -> Result<Tok, ParseError> {
        let mut value = String::new();
        loop {
            let esc_pos = self.pos;
            let Some(c) = self.bump() else {
                return Err(ParseError::new("Unterminated string", pos));
            };
            match c {
                c if c == quote => {
                    // SQL's doubled quote stands for one quote.
                    if self.peek() == Some(quote) {
                        self.bump();
                        value.push(quote);
                    } else {
                        return Ok(Tok::Str {
                            value,
                            double: quote == '"',
                        });
                    }
                }
                '\\' => {
                    let e = self.bump();
                    value.push(match e {
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('"') => '"',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => self.unicode_escape(esc_pos)?,
                        Some(other) => {
                            return Err(ParseError::new(
                                format!("Invalid escape '\\{other}' in string"),
                                esc_pos,
                            ));
                        }
                        None => return Err(ParseError::new("Unterminated string", pos)),
                    });
                }
                c => value.push(c),
            }
        }
    }

    fn hex4(&mut self, pos: Position) -> Result<u32, ParseError> {
        let mut n = 0;
        for _ in 0..4 {
            let d = self.bump().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                ParseError::new("Invalid \\u escape: expected four hex digits", pos)
            })?;
            n = n * 16 + d;
        }
        Ok(n)
    }

    fn unicode_escape(&mut self, pos: Position) -> Result<char, ParseError> {
        let hi = self.hex4(pos)?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !(self.bump() == Some('\\') && self.bump() == Some('u')) {
                return Err(ParseError::new("Unpaired surrogate in \\u escape", pos));
            }
            let lo = self.hex4(pos)?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(ParseError::new("Unpaired surrogate in \\u escape", pos));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| ParseError::new("Unpaired surrogate in \\u escape", pos))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let t = l.next_token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn operators_and_numbers() {
        assert_eq!(
            toks("a<>b != c<=1.5e3>=2 a[0].b"),
            vec![
                Tok::Ident("a".into()),
                Tok::Ne,
                Tok::Ident("b".into()),
                Tok::Ne,
                Tok::Ident("c".into()),
                Tok::Le,
                Tok::Dec(1500.0),
                Tok::Ge,
                Tok::Int(2),
                Tok::Ident("a".into()),
                Tok::LBracket,
                Tok::Int(0),
                Tok::RBracket,
                Tok::Dot,
                Tok::Ident("b".into()),
            ]
        );
        assert!(Lexer::new("1e").next_token().is_err());
        assert_eq!(toks("1e+2 3E-1"), vec![Tok::Dec(100.0), Tok::Dec(0.3)]);
        assert_eq!(toks("99999999999999999999"), vec![Tok::Dec(1e20)]);
    }

    #[test]
    fn strings() {
        assert_eq!(
            toks(r#"'it''s' "a\"b" '\u00e9\n'"#),
            vec![
                Tok::Str {
                    value: "it's".into(),
                    double: false
                },
                Tok::Str {
                    value: "a\"b".into(),
                    double: true
                },
                Tok::Str {
                    value: "é\n".into(),
                    double: false
                },
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = Lexer::new("a\n  'abc").next_token().and_then(|_| {
            let mut l = Lexer::new("a\n  'abc");
            l.next_token()?;
            l.next_token()
        });
        assert_eq!(e.unwrap_err().to_string(), "Unterminated string at 2:3");
        let mut l = Lexer::new("a || b");
        l.next_token().unwrap();
        assert!(l.next_token().unwrap_err().message.contains("concat"));
        assert_eq!(
            Lexer::new("1e999").next_token().unwrap_err().to_string(),
            "Number 1e999 is out of range at 1:1"
        );
        assert!(Lexer::new("12ab").next_token().is_err());
        assert!(Lexer::new("'\\q'").next_token().is_err());
        assert!(Lexer::new("#").next_token().is_err());
    }
}
