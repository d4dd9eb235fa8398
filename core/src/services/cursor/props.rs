//! Property tests of the cursor parser: every cursor encodes and decodes back, and garbage or another list's
//! cursor is `INVALID_CURSOR`, never a panic and never a position.

use proptest::prelude::*;

use super::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_round_trips(kind in "[a-z_]{1,16}", position in "\\PC{0,64}") {
        prop_assert_eq!(decode(&kind, &encode(&kind, &position)).unwrap(), position);
    }

    #[test]
    fn numeric_positions_round_trip(kind in "[a-z_]{1,16}", n in any::<i64>()) {
        prop_assert_eq!(decode_parsed::<i64>(&kind, &encode(&kind, &n.to_string())).unwrap(), n);
    }

    /// A cursor of another list is refused (kinds never contain the `:` separator).
    #[test]
    fn another_lists_cursor_is_refused(a in "[a-z_]{1,16}", b in "[a-z_]{1,16}", position in "\\PC{0,32}") {
        prop_assume!(a != b);
        let err = decode(&b, &encode(&a, &position)).unwrap_err();
        prop_assert_eq!(err.code, ErrorCode::InvalidCursor);
    }

    /// Any text: a position only if it really is a base64url cursor of this kind, otherwise `INVALID_CURSOR`.
    #[test]
    fn arbitrary_text_is_a_position_or_invalid_cursor(kind in "[a-z_]{1,16}", cursor in "\\PC{0,96}") {
        match decode(&kind, &cursor) {
            Ok(position) => prop_assert_eq!(&encode(&kind, &position), &cursor),
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidCursor),
        }
        if let Err(e) = decode_parsed::<u64>(&kind, &cursor) {
            prop_assert_eq!(e.code, ErrorCode::InvalidCursor);
        }
    }

    /// Arbitrary bytes under valid base64url: decoded or `INVALID_CURSOR` (invalid UTF-8, a missing separator).
    #[test]
    fn arbitrary_decoded_bytes_are_a_position_or_invalid_cursor(kind in "[a-z_]{1,16}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let cursor = URL_SAFE_NO_PAD.encode(&bytes);
        match decode(&kind, &cursor) {
            Ok(position) => prop_assert_eq!([kind.as_bytes(), b":", position.as_bytes()].concat(), bytes),
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidCursor),
        }
    }
}
