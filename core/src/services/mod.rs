//! Services over the ports.
