//! Name rules of the data-plane REST API (docs/protocol/azure.md, "Data-plane REST API";
//! checklist item 103).

/// The longest user id or connection id accepted (the service documents none; bounded here).
pub(crate) const MAX_ID_LEN: usize = 1024;

/// A hub or application name: `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$`.
pub(crate) fn valid_hub(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 128
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "_`,.[]".contains(c))
}

/// A group name: 1 to 1024 characters, not only whitespace.
pub(crate) fn valid_group(name: &str) -> bool {
    let count = name.chars().count();
    (1..=1024).contains(&count) && !name.chars().all(char::is_whitespace)
}

/// A user id or connection id: 1 to [`MAX_ID_LEN`] bytes, not only whitespace.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().all(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_follow_the_service_pattern() {
        for good in ["a", "Chat", "chat_1", "a`,.[]", &"h".repeat(128)] {
            assert!(valid_hub(good), "{good}");
        }
        for bad in [
            "",
            "1chat",
            "_chat",
            "chat room",
            "chat/x",
            "chat?x",
            "chät",
            "chat%20",
            "chat<script>",
            &"h".repeat(129),
        ] {
            assert!(!valid_hub(bad), "{bad}");
        }
    }

    #[test]
    fn group_names_are_one_to_1024_characters_and_not_only_whitespace() {
        assert!(valid_group("g"));
        assert!(valid_group(" a "));
        assert!(valid_group("группа/💬?&"));
        assert!(valid_group(&"é".repeat(1024)));
        assert!(!valid_group(""));
        assert!(!valid_group("   "));
        assert!(!valid_group("\t\n"));
        assert!(!valid_group(&"g".repeat(1025)));
    }

    #[test]
    fn ids_are_bounded_and_not_blank() {
        assert!(valid_id("u1"));
        assert!(!valid_id(""));
        assert!(!valid_id("  "));
        assert!(!valid_id(&"u".repeat(MAX_ID_LEN + 1)));
    }
}
