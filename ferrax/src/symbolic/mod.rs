//! Closed-form expressions: parser, symbolic derivative, simplifier.
