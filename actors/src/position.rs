//! Fractional position keys.
//!
//! Columns, groups and items are ordered by a string key. Placing something between two
//! neighbours makes a key that sorts between theirs, so reordering writes one row and never
//! renumbers the rest. Keys are digits of base 62 in ASCII order (`0-9A-Za-z`), compared as
//! plain strings by both databases (`COLLATE "C"` order on Postgres, binary on SQLite) and Rust.

const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: u32 = 62;

fn value(digit: u8) -> Option<u32> {
    DIGITS.iter().position(|d| *d == digit).map(|p| p as u32)
}

/// Whether `key` is a well-formed position key: non-empty base-62 digits, not ending in `0`
/// (which keeps "between" always possible).
pub fn is_valid(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| value(b).is_some()) && !key.ends_with('0')
}

/// A key strictly between `before` and `after` (either may be absent: the start or end of the
/// list). Returns `None` when `before >= after` or either key is malformed.
pub fn between(before: Option<&str>, after: Option<&str>) -> Option<String> {
    if before.is_some_and(|b| !is_valid(b)) || after.is_some_and(|a| !is_valid(a)) {
        return None;
    }
    if let (Some(b), Some(a)) = (before, after) {
        if b >= a {
            return None;
        }
    }
    let low = before.unwrap_or("").as_bytes();
    let high = after.map(str::as_bytes);
    let mut key = Vec::new();
    let mut i = 0;
    // Walk digit by digit: copy the common prefix, then pick a digit strictly between the two
    // (or extend past `low` when they are adjacent).
    loop {
        let lo = low.get(i).and_then(|d| value(*d)).unwrap_or(0);
        let hi = match high {
            Some(h) => h.get(i).and_then(|d| value(*d)).unwrap_or(BASE),
            None => BASE,
        };
        if lo == hi {
            key.push(DIGITS[lo as usize]);
            i += 1;
            continue;
        }
        let mid = (lo + hi) / 2;
        if mid > lo {
            key.push(DIGITS[mid as usize]);
            return String::from_utf8(key).ok();
        }
        // Adjacent digits: keep `lo` here, and from now on only `low` bounds us from below.
        key.push(DIGITS[lo as usize]);
        i += 1;
        loop {
            let lo = low.get(i).and_then(|d| value(*d)).unwrap_or(0);
            let mid = (lo + BASE) / 2;
            if mid > lo {
                key.push(DIGITS[mid as usize]);
                return String::from_utf8(key).ok();
            }
            key.push(DIGITS[lo as usize]);
            i += 1;
        }
    }
}

/// A key after `last` (the end of a list).
pub fn after(last: Option<&str>) -> Option<String> {
    between(last, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keys() {
        assert_eq!(between(None, None).as_deref(), Some("V"));
        let a = after(Some("V")).unwrap();
        assert!(a.as_str() > "V");
    }

    #[test]
    fn between_adjacent_digits_extends() {
        let k = between(Some("a"), Some("b")).unwrap();
        assert!("a" < k.as_str() && k.as_str() < "b", "{k}");
        let k = between(Some("az"), Some("b")).unwrap();
        assert!("az" < k.as_str() && k.as_str() < "b", "{k}");
    }

    #[test]
    fn refuses_disordered_or_malformed() {
        assert_eq!(between(Some("b"), Some("a")), None);
        assert_eq!(between(Some("b"), Some("b")), None);
        assert_eq!(between(Some("a0"), None), None);
        assert_eq!(between(Some("a-"), None), None);
        assert_eq!(between(Some(""), None), None);
    }

    #[test]
    fn repeated_inserts_keep_order_and_validity() {
        // Insert many times at the front, the back and always right after the first key,
        // which drives keys long; every key stays valid and strictly ordered.
        let mut keys: Vec<String> = vec![between(None, None).unwrap()];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = match n % 3 {
                0 => 0,
                1 => keys.len(),
                _ => (seed as usize) % (keys.len() + 1),
            };
            let before = at.checked_sub(1).map(|i| keys[i].as_str());
            let after = keys.get(at).map(String::as_str);
            let key = between(before, after).unwrap_or_else(|| panic!("{before:?} {after:?}"));
            assert!(is_valid(&key), "{key}");
            keys.insert(at, key);
        }
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
    }
}
