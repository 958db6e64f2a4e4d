//! The delivery service.
