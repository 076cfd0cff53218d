//! Pure states. (being written)
