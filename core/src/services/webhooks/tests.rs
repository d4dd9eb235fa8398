//! Webhook service tests.
