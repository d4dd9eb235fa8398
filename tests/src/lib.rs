//! End-to-end test support lives in it/.
