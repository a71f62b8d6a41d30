//! Text folding for the PostgreSQL search index, so that it finds what SQLite's FTS5
//! (`unicode61 remove_diacritics 2`) finds.
//!
//! FTS5's tokenizer keeps runs of letters and digits, lowercases them and drops diacritics.
//! PostgreSQL's parser splits text differently (hyphenated words, e-mail-like and URL-like
//! tokens) and has no diacritic folding without the `unaccent` extension, which distributed
//! PostgreSQL-wire engines lack. So the store folds in Rust: [`fold`] turns text into
//! lowercase words without diacritics separated by spaces, which PostgreSQL's `simple`
//! configuration then splits exactly at the spaces.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// `text` as space-separated, lowercased words of letters and digits, diacritics removed
/// (canonical decomposition, then combining marks dropped).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A `to_tsquery` text in which every word of every term must match as a word prefix
/// (`word:* & word:*`); `None` when nothing searchable is left. Folded words hold only
/// letters and digits, so no query syntax can be injected.
pub fn prefix_query(terms: &[String]) -> Option<String> {
    let words: Vec<String> = terms
        .iter()
        .flat_map(|t| {
            fold(t)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| format!("{w}:*"))
                .collect::<Vec<_>>()
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_unicode61_with_diacritics_removed() {
        assert_eq!(fold("Café au Lait"), "cafe au lait");
        assert_eq!(
            fold("  PG-13: Ørsted's naïve e-mail@x.org  "),
            "pg 13 ørsted s naive e mail x org"
        );
        assert_eq!(fold("[\"demo\",\"sample\"]"), "demo sample");
        assert_eq!(fold("Ünïcödé 2024"), "unicode 2024");
        assert_eq!(fold("!!"), "");
    }

    #[test]
    fn prefix_queries_hold_only_folded_words() {
        assert_eq!(
            prefix_query(&["Sampl".into(), "Café".into()]).as_deref(),
            Some("sampl:* & cafe:*")
        );
        assert_eq!(prefix_query(&[]), None);
        assert_eq!(prefix_query(&["".into()]), None);
        // Even input the API would refuse cannot reach the query syntax.
        assert_eq!(
            prefix_query(&["a'|b:*".into()]).as_deref(),
            Some("a:* & b:*")
        );
    }
}
