//! Fractional position keys.
//!
//! Columns, groups and items are ordered by a string key. Placing something between two
//! neighbours makes a key that sorts between theirs, so reordering writes one row and never
//! renumbers the rest. Keys are base-62 digits in ASCII order (`0-9A-Za-z`); the board actor
//! orders them bytewise in memory, so no database collation is involved.

const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ZERO: u8 = b'0';
const LAST: u8 = b'z';
/// Longest key a placement may make. Placing again and again into one gap lengthens keys (by
/// about one character per five placements); past this the placement is refused, so no client
/// can grow rows, snapshots and events without bound.
pub const MAX_KEY_LEN: usize = 256;

/// The smallest integer part; nothing can be placed before a key that starts with it.
const SMALLEST_INTEGER: &str = "A00000000000000000000000000";

// The scheme (after rocicorp's fractional-indexing): a key is an "integer part" whose first
// character encodes its length (`a`..`z`: 2..27 characters, growing; `Z`..`A`: 2..27,
// shrinking towards the negative end), followed by an optional fraction. Appending increments
// the integer, so a list of n appended items has keys of O(log n) length; inserting between two
// keys takes the midpoint of their fractions.

fn digit(c: u8) -> Option<usize> {
    DIGITS.iter().position(|d| *d == c)
}

fn integer_len(head: u8) -> Option<usize> {
    match head {
        b'a'..=b'z' => Some(usize::from(head - b'a') + 2),
        b'A'..=b'Z' => Some(usize::from(b'Z' - head) + 2),
        _ => None,
    }
}

/// Splits a key into its integer part and fraction, checking the shape.
fn split(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = integer_len(*key.first()?)?;
    if key.len() < len || key.iter().any(|c| digit(*c).is_none()) {
        return None;
    }
    let (integer, fraction) = key.split_at(len);
    if fraction.last() == Some(&ZERO) || key == SMALLEST_INTEGER.as_bytes() {
        return None;
    }
    Some((integer, fraction))
}

/// Whether `key` is a well-formed position key.
pub fn is_valid(key: &str) -> bool {
    split(key.as_bytes()).is_some()
}

/// A fraction strictly between `a` and `b` (`None`: no upper bound). Neither ends in `0`.
/// A loop, not recursion: keys grow with repeated placements into one gap, and their length
/// must never decide the stack depth.
fn midpoint(a: &[u8], b: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut a, mut b) = (a, b);
    loop {
        if let Some(upper) = b {
            let mut n = 0;
            while n < upper.len() && a.get(n).copied().unwrap_or(ZERO) == upper[n] {
                n += 1;
            }
            if n > 0 {
                out.extend_from_slice(&upper[..n]);
                a = a.get(n..).unwrap_or(&[]);
                b = Some(&upper[n..]);
                continue;
            }
        }
        let digit_a = a.first().and_then(|c| digit(*c)).unwrap_or(0);
        let digit_b = match b {
            Some(b) => b.first().and_then(|c| digit(*c)).unwrap_or(DIGITS.len()),
            None => DIGITS.len(),
        };
        if digit_b.saturating_sub(digit_a) > 1 {
            out.push(DIGITS[(digit_a + digit_b).div_ceil(2)]);
            return out;
        }
        match b {
            Some(upper) if upper.len() > 1 => {
                out.push(upper[0]);
                return out;
            }
            _ => {
                out.push(DIGITS[digit_a]);
                a = a.get(1..).unwrap_or(&[]);
                b = None;
            }
        }
    }
}

fn increment_integer(integer: &[u8]) -> Option<Vec<u8>> {
    let (&head, digits) = integer.split_first()?;
    let mut digits = digits.to_vec();
    let mut carry = true;
    for d in digits.iter_mut().rev() {
        if !carry {
            break;
        }
        let next = digit(*d)? + 1;
        if next == DIGITS.len() {
            *d = ZERO;
        } else {
            *d = DIGITS[next];
            carry = false;
        }
    }
    if !carry {
        let mut out = vec![head];
        out.extend(digits);
        return Some(out);
    }
    match head {
        b'Z' => Some(vec![b'a', ZERO]),
        b'z' => None,
        _ => {
            let head = head + 1;
            if head > b'a' {
                digits.push(ZERO);
            } else {
                digits.pop();
            }
            let mut out = vec![head];
            out.extend(digits);
            Some(out)
        }
    }
}

fn decrement_integer(integer: &[u8]) -> Option<Vec<u8>> {
    let (&head, digits) = integer.split_first()?;
    let mut digits = digits.to_vec();
    let mut borrow = true;
    for d in digits.iter_mut().rev() {
        if !borrow {
            break;
        }
        match digit(*d)?.checked_sub(1) {
            None => *d = LAST,
            Some(prev) => {
                *d = DIGITS[prev];
                borrow = false;
            }
        }
    }
    if !borrow {
        let mut out = vec![head];
        out.extend(digits);
        return Some(out);
    }
    match head {
        b'a' => Some(vec![b'Z', LAST]),
        b'A' => None,
        _ => {
            let head = head - 1;
            if head < b'Z' {
                digits.push(LAST);
            } else {
                digits.pop();
            }
            let mut out = vec![head];
            out.extend(digits);
            Some(out)
        }
    }
}

/// A key strictly between `before` and `after` (either may be absent: the start or end of the
/// list). Returns `None` when `before >= after`, a key is malformed, or the key space is used
/// up at that end.
pub fn between(before: Option<&str>, after: Option<&str>) -> Option<String> {
    let a = before.map(str::as_bytes);
    let b = after.map(str::as_bytes);
    if let (Some(a), Some(b)) = (a, b) {
        if a >= b {
            return None;
        }
    }
    let key = match (a, b) {
        (None, None) => vec![b'a', ZERO],
        (None, Some(b)) => {
            let (ib, fb) = split(b)?;
            if ib == SMALLEST_INTEGER.as_bytes() {
                let mut out = ib.to_vec();
                out.extend(midpoint(&[], Some(fb)));
                out
            } else if ib.len() < b.len() {
                ib.to_vec()
            } else {
                decrement_integer(ib)?
            }
        }
        (Some(a), None) => {
            let (ia, fa) = split(a)?;
            match increment_integer(ia) {
                Some(i) => i,
                None => {
                    let mut out = ia.to_vec();
                    out.extend(midpoint(fa, None));
                    out
                }
            }
        }
        (Some(a), Some(b)) => {
            let (ia, fa) = split(a)?;
            let (ib, fb) = split(b)?;
            if ia == ib {
                let mut out = ia.to_vec();
                out.extend(midpoint(fa, Some(fb)));
                out
            } else {
                let i = increment_integer(ia)?;
                if i.as_slice() < b {
                    i
                } else {
                    let mut out = ia.to_vec();
                    out.extend(midpoint(fa, None));
                    out
                }
            }
        }
    };
    String::from_utf8(key).ok()
}

/// A key after `last` (the end of a list).
pub fn after(last: Option<&str>) -> Option<String> {
    between(last, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_do_not_deepen_the_stack() {
        let long = vec![LAST; 500_000];
        let mid = midpoint(&long, None);
        assert!(mid.as_slice() > long.as_slice());
        let upper = [long.as_slice(), b"1"].concat();
        let mid = midpoint(&long, Some(&upper));
        assert!(mid.as_slice() > long.as_slice() && mid.as_slice() < upper.as_slice());
    }

    #[test]
    fn known_keys() {
        // The same answers as rocicorp's fractional-indexing.
        assert_eq!(between(None, None).as_deref(), Some("a0"));
        assert_eq!(between(Some("a0"), None).as_deref(), Some("a1"));
        assert_eq!(between(Some("az"), None).as_deref(), Some("b00"));
        assert_eq!(between(None, Some("a0")).as_deref(), Some("Zz"));
        assert_eq!(between(Some("a0"), Some("a1")).as_deref(), Some("a0V"));
        assert_eq!(between(Some("a1"), Some("a2")).as_deref(), Some("a1V"));
        assert_eq!(between(Some("a0V"), Some("a1")).as_deref(), Some("a0l"));
        assert_eq!(between(Some("Zz"), Some("a0")).as_deref(), Some("ZzV"));
        assert_eq!(between(Some("a0"), Some("a0V")).as_deref(), Some("a0G"));
    }

    #[test]
    fn appends_stay_short() {
        let mut key = between(None, None).unwrap();
        for _ in 0..10_000 {
            key = after(Some(&key)).unwrap();
        }
        assert!(key.len() <= 4, "{key}");
    }

    #[test]
    fn refuses_disordered_or_malformed() {
        assert_eq!(between(Some("a1"), Some("a0")), None);
        assert_eq!(between(Some("a1"), Some("a1")), None);
        assert_eq!(between(Some("a10"), None), None);
        assert_eq!(between(Some("a-"), None), None);
        assert_eq!(between(Some(""), None), None);
        assert_eq!(between(Some("V"), None), None);
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
