//! Logical lines to a tree of statements: `keyword arg … [{ statement … }]`.
//!
//! As in keepalived, `{` and `}` outside double quotes end a statement wherever they stand, a
//! block may open on the line after its keyword, and a quoted string is one argument without
//! its quotes.

use crate::diag::{Diagnostics, Location};
use crate::source::Line;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub at: Location,
    pub keyword: String,
    pub args: Vec<String>,
    /// The `{ … }` that follows the statement, if any.
    pub block: Option<Vec<Node>>,
}

/// Blocks nest at most this deep (keepalived's grammar needs five; this bounds a bad file).
const MAX_DEPTH: usize = 32;

enum Token {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

struct Tokens {
    items: Vec<(Token, usize)>,
    pos: usize,
}

/// Builds the tree of `lines`; unbalanced braces are errors in `diags`.
pub fn build(lines: &[Line], diags: &mut Diagnostics) -> Vec<Node> {
    let mut items = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        tokenize(&line.text, index, &mut items);
        items.push((Token::EndOfLine, index));
    }
    let mut tokens = Tokens { items, pos: 0 };
    let mut nodes = Vec::new();
    loop {
        nodes.extend(block(&mut tokens, lines, diags, 0));
        match tokens.items.get(tokens.pos) {
            None => break,
            Some((_, index)) => {
                // block() returns early only at a '}' with nothing open.
                diags.error(&lines[*index].at, "}", "extra '}' found");
                tokens.pos += 1;
            }
        }
    }
    nodes
}

fn tokenize(text: &str, index: usize, out: &mut Vec<(Token, usize)>) {
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '{' => {
                chars.next();
                out.push((Token::Open, index));
            }
            '}' => {
                chars.next();
                out.push((Token::Close, index));
            }
            '"' => {
                chars.next();
                let rest = &text[start + 1..];
                let end = rest.find('"').unwrap_or(rest.len());
                out.push((Token::Word(rest[..end].to_string()), index));
                let stop = start + 1 + end + 1;
                while chars.peek().is_some_and(|&(i, _)| i < stop) {
                    chars.next();
                }
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if matches!(c, ' ' | '\t' | '{' | '}' | '"') {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                out.push((Token::Word(text[start..end].to_string()), index));
            }
        }
    }
}

/// Statements up to the `}` that closes this block (left unconsumed at depth 0) or the end.
fn block(t: &mut Tokens, lines: &[Line], diags: &mut Diagnostics, depth: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    while let Some((token, index)) = t.items.get(t.pos) {
        let index = *index;
        match token {
            Token::EndOfLine => t.pos += 1,
            Token::Close => {
                // At depth 0 the '}' closes nothing: `build` reports it.
                if depth > 0 {
                    t.pos += 1;
                }
                return nodes;
            }
            Token::Open => {
                // A block with no statement before it: read it so its braces balance, drop it.
                t.pos += 1;
                diags.warning(&lines[index].at, "{", "unexpected '{': block ignored");
                let _ = nested(t, lines, diags, depth, index);
            }
            Token::Word(_) => {
                let mut words = Vec::new();
                while let Some((Token::Word(w), _)) = t.items.get(t.pos) {
                    words.push(w.clone());
                    t.pos += 1;
                }
                // The block may open after the end of the line (keepalived allows it).
                let mut look = t.pos;
                while let Some((Token::EndOfLine, _)) = t.items.get(look) {
                    look += 1;
                }
                let block = match t.items.get(look) {
                    Some((Token::Open, _)) => {
                        t.pos = look + 1;
                        Some(nested(t, lines, diags, depth, index))
                    }
                    _ => None,
                };
                let keyword = words.remove(0);
                nodes.push(Node {
                    at: lines[index].at.clone(),
                    keyword,
                    args: words,
                    block,
                });
            }
        }
    }
    // An unclosed block is reported by `nested`, with the line that opened it.
    nodes
}

fn nested(
    t: &mut Tokens,
    lines: &[Line],
    diags: &mut Diagnostics,
    depth: usize,
    opened: usize,
) -> Vec<Node> {
    if depth + 1 > MAX_DEPTH {
        diags.error(
            &lines[opened].at,
            "{",
            format!("blocks nested more than {MAX_DEPTH} deep"),
        );
        skip_block(t);
        return Vec::new();
    }
    let before = t.pos;
    let children = block(t, lines, diags, depth + 1);
    let closed = t.pos > before && matches!(t.items.get(t.pos - 1), Some((Token::Close, _)));
    if !closed {
        diags.error(&lines[opened].at, "{", "block is not closed: missing '}'");
    }
    children
}

/// Skips to after the `}` matching an already consumed `{`, without recursion.
fn skip_block(t: &mut Tokens) {
    let mut open = 1usize;
    while let Some((token, _)) = t.items.get(t.pos) {
        t.pos += 1;
        match token {
            Token::Open => open += 1,
            Token::Close => {
                open -= 1;
                if open == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Reader;

    fn tree(text: &str) -> (Vec<Node>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let lines = Reader::new("h", &mut diags).read_str("t.conf", text);
        let nodes = build(&lines, &mut diags);
        (nodes, diags)
    }

    fn shape(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let mut s = n.keyword.clone();
                for a in &n.args {
                    s.push(' ');
                    s.push_str(a);
                }
                if let Some(b) = &n.block {
                    s.push_str(&format!("{{{}}}", shape(b)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn braces_split_statements_wherever_they_stand() {
        let (nodes, diags) =
            tree("real_server 1.2.3.4 80 {weight 1\nTCP_CHECK {connect_timeout 3}}\nx");
        assert!(diags.list.is_empty(), "{:?}", diags.list);
        assert_eq!(
            shape(&nodes),
            "real_server 1.2.3.4 80{weight 1;TCP_CHECK{connect_timeout 3}};x"
        );
    }

    #[test]
    fn a_block_may_open_on_the_next_line() {
        let (nodes, _) = tree("virtual_server 1.1.1.1 80\n{\n  lb_algo rr\n}\n");
        assert_eq!(shape(&nodes), "virtual_server 1.1.1.1 80{lb_algo rr}");
        assert_eq!(nodes[0].block.as_ref().unwrap()[0].at.line, 3);
    }

    #[test]
    fn quoted_strings_are_one_argument() {
        let (nodes, _) = tree("misc_path \"/bin/check {x} y\"\n");
        assert_eq!(nodes[0].args, ["/bin/check {x} y"]);
    }

    #[test]
    fn unbalanced_braces_are_errors_with_lines() {
        let (_, diags) = tree("a {\n b\n}\n}\n");
        assert!(
            diags
                .list
                .iter()
                .any(|d| d.at.line == 4 && d.message.contains("extra")),
            "{:?}",
            diags.list
        );
        let (_, diags) = tree("a {\n b {\n");
        assert!(
            diags
                .list
                .iter()
                .any(|d| d.at.line == 1 && d.message.contains("not closed")),
            "{:?}",
            diags.list
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let text = "a {\n".repeat(10_000);
        let (_, diags) = tree(&text);
        assert!(diags.has_errors());
    }
}
