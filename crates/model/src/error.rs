//! How an error reads in a reason, a log line or a message: the error and
//! every cause under it, on one line.

/// The error and its causes, on one line (`a: b: c`): what a stack event's
/// reason, a build's failure and a log line say, so that none of them stops
/// at "container engine failed" without the why.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("start container 3f2a")]
    struct Outer {
        #[source]
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("engine answered 500")]
    struct Middle {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_cause_is_on_the_line_in_order() {
        let error = Outer { source: Middle { source: std::io::Error::other("no space left") } };
        assert_eq!(error_chain(&error), "start container 3f2a: engine answered 500: no space left");
        assert_eq!(error_chain(&error.source.source), "no space left");
    }
}
