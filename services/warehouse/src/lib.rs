//! The warehouse service.
